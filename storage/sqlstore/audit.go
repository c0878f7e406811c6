package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/keystep/keystep/storage"
)

const auditCols = `seq, time, type, user_id, actor_id, client_id, ip, user_agent, outcome, reason, details, prev_hash, hash`

func scanAudit(sc Row) (storage.AuditEvent, error) {
	var e storage.AuditEvent
	err := sc.Scan(&e.Seq, at(&e.Time), &e.Type, &e.UserID, &e.ActorID, &e.ClientID, &e.IP, &e.UserAgent,
		&e.Outcome, &e.Reason, js(&e.Details), &e.PrevHash, &e.Hash)
	return e, err
}

// AppendAudit reads the last row and appends after it in one transaction
// that holds the audit lock (Locks.Audit; SQLite runs one write transaction
// at a time), so appends from every connection queue, each reads the row the
// one before it committed, and the chain stays one line. (Locking the last
// row instead would not do: a waiter would wake up to the same last row.)
//
// Text fields are made storable first (Dialect.Text), and the hash covers
// what is stored: a request must not be able to keep its event out of the
// log with a User-Agent that one database would refuse.
func (s *Store) AppendAudit(ctx context.Context, key storage.AuditKey, e storage.AuditEvent) (storage.AuditEvent, error) {
	if key.IsZero() {
		return storage.AuditEvent{}, s.fail("append audit", errors.New("no audit key"))
	}
	e = s.storable(e)
	e.Time = fromNanos(nanos(e.Time)) // what will be read back, so the hash verifies
	err := s.tx(ctx, func(tx db) error {
		if s.locks != nil {
			if err := s.locks.Audit(ctx, tx.q); err != nil {
				return err
			}
		}
		var last int64
		var prev string
		err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		e.Seq, e.PrevHash = last+1, prev
		e.Hash = key.Hash(prev, e)
		_, err = tx.exec(ctx, `INSERT INTO audit_events (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, nanos(e.Time), string(e.Type), e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent,
			e.Outcome, e.Reason, jsonOf(e.Details), e.PrevHash, e.Hash)
		return err
	})
	if err != nil {
		return storage.AuditEvent{}, s.fail("append audit", err)
	}
	return e, nil
}

// storable is e with every text field passed through Dialect.Text. Details
// stays nil when nil.
func (s *Store) storable(e storage.AuditEvent) storage.AuditEvent {
	text := s.d.Text
	if text == nil {
		return e
	}
	e.Type = storage.EventType(text(string(e.Type)))
	for _, f := range []*string{&e.UserID, &e.ActorID, &e.ClientID, &e.IP, &e.UserAgent, &e.Outcome, &e.Reason} {
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
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.UserID != "" {
		add("user_id = ?", f.UserID)
	}
	if f.ClientID != "" {
		add("client_id = ?", f.ClientID)
	}
	if f.Type != "" {
		add("type = ?", string(f.Type))
	}
	if len(f.Types) > 0 {
		where = append(where, "type IN (?"+strings.Repeat(", ?", len(f.Types)-1)+")")
		for _, t := range f.Types {
			args = append(args, string(t))
		}
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if !f.Since.IsZero() {
		add("time >= ?", nanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("time < ?", nanos(f.Until))
	}
	if f.AfterSeq != 0 {
		add("seq > ?", f.AfterSeq)
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
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.read.query(ctx, q, args...)
	es, err := list(rows, err, scanAudit)
	if err != nil {
		return nil, s.fail("list audit", err)
	}
	return es, nil
}
