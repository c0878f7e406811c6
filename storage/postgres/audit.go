package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

const auditCols = `seq, time, type, user_id, actor_id, client_id, ip, user_agent, outcome, reason, details, prev_hash, hash`

func scanAudit(sc scanner) (storage.AuditEvent, error) {
	var e storage.AuditEvent
	err := sc.Scan(&e.Seq, at(&e.Time), &e.Type, &e.UserID, &e.ActorID, &e.ClientID, &e.IP, &e.UserAgent,
		&e.Outcome, &e.Reason, &e.Details, &e.PrevHash, &e.Hash)
	return e, err
}

// AppendAudit takes the schema's audit lock, a transaction-level advisory
// lock, then reads the last row and appends after it. Appends from every
// connection of every instance queue on the lock, and each reads the row the
// one before it committed, so the chain stays one line. (Locking the last
// row instead would not do: a waiter would wake up to the same last row.)
//
// Text fields are made storable first (see text), and the hash covers what
// is stored: a request must not be able to keep its event out of the log
// with a User-Agent that is not UTF-8, which SQLite would have stored.
func (s *Store) AppendAudit(ctx context.Context, key storage.AuditKey, e storage.AuditEvent) (storage.AuditEvent, error) {
	if key.IsZero() {
		return storage.AuditEvent{}, errors.New("postgres: append audit: no audit key")
	}
	e = storable(e)
	e.Time = fromNanos(nanos(e.Time)) // what will be read back, so the hash verifies
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockSchema(ctx, tx, lockAudit); err != nil {
			return err
		}
		var last int64
		var prev string
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		e.Seq, e.PrevHash = last+1, prev
		e.Hash = key.Hash(prev, e)
		_, err = tx.Exec(ctx, `INSERT INTO audit_events (`+auditCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			e.Seq, nanos(e.Time), e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent,
			e.Outcome, e.Reason, jsonOf(e.Details), e.PrevHash, e.Hash)
		return err
	})
	if err != nil {
		return storage.AuditEvent{}, fmt.Errorf("postgres: append audit: %w", err)
	}
	return e, nil
}

// storable is e with every text field passed through text. Details stays
// nil when nil.
func storable(e storage.AuditEvent) storage.AuditEvent {
	for _, f := range []*string{&e.Type, &e.UserID, &e.ActorID, &e.ClientID, &e.IP, &e.UserAgent, &e.Outcome, &e.Reason} {
		*f = text(*f)
	}
	if e.Details != nil {
		d := make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			d[text(k)] = text(v)
		}
		e.Details = d
	}
	return e
}

// ListAudit treats Since as inclusive and Until as exclusive.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.UserID != "" {
		add("user_id =", f.UserID)
	}
	if f.ClientID != "" {
		add("client_id =", f.ClientID)
	}
	if f.Type != "" {
		add("type =", f.Type)
	}
	if f.Outcome != "" {
		add("outcome =", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("time >=", nanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("time <", nanos(f.Until))
	}
	if f.AfterSeq != 0 {
		add("seq >", f.AfterSeq)
	}
	q := `SELECT ` + auditCols + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	if f.Newest {
		q += ` ORDER BY seq DESC`
	} else {
		q += ` ORDER BY seq`
	}
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	es, err := list(rows, err, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return es, nil
}
