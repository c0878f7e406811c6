package sqlstore

import (
	"context"
	"slices"
	"time"

	"github.com/keystep/keystep/storage"
)

const outboxCols = `id, kind, client_id, target, payload, status, attempts, queued_at,
	next_attempt_at, last_attempt_at, last_error, lease_owner, lease_until`

func scanOutbox(sc Row) (storage.OutboxMessage, error) {
	var m storage.OutboxMessage
	var attempts int64
	err := sc.Scan(&m.ID, &m.Kind, &m.ClientID, &m.Target, &m.Payload, &m.Status, &attempts, at(&m.QueuedAt),
		at(&m.NextAttemptAt), at(&m.LastAttemptAt), &m.LastError, &m.LeaseOwner, at(&m.LeaseUntil))
	m.Attempts = int(attempts)
	return m, err
}

// rememberSessionClient records that g's client was given tokens under
// g's session (session_clients), once per session and client.
func rememberSessionClient(ctx context.Context, tx db, g storage.Grant, at time.Time) error {
	if g.SessionID == "" || g.Subject == "" {
		return nil
	}
	_, err := tx.exec(ctx, `INSERT INTO session_clients (sid, client_id, user_id, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (sid, client_id) DO NOTHING`, g.SessionID, g.ClientID, g.Subject, nanos(at))
	return err
}

// SessionClients reads session_clients, and the families and completed
// requests of sid (which name clients given tokens before session_clients
// existed), through their indexes.
func (s *Store) SessionClients(ctx context.Context, sid string) ([]string, error) {
	if sid == "" {
		return nil, nil
	}
	rows, err := s.read.query(ctx, `SELECT client_id FROM session_clients WHERE sid = ?
		UNION SELECT client_id FROM refresh_families WHERE session_id = ?
		UNION SELECT client_id FROM auth_requests WHERE session_id = ? AND done
		ORDER BY client_id`, sid, sid, sid)
	ids, err := list(rows, err, func(r Row) (string, error) {
		var id string
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, s.fail("session clients", err)
	}
	return ids, nil
}

// EndSessions takes each user's revocation lock first (in order, as
// RevokeUserClientTokens does), so a rotation under way is waited for and
// one after it finds its family revoked.
func (s *Store) EndSessions(ctx context.Context, ends []storage.SessionEnd, msgs []storage.OutboxMessage) error {
	users := make([]string, 0, len(ends))
	for _, e := range ends {
		users = append(users, e.UserID)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	err := s.tx(ctx, func(tx db) error {
		for _, u := range users {
			if err := s.lockRevocation(ctx, tx, u, "", ""); err != nil {
				return err
			}
		}
		for _, e := range ends {
			if e.ID != "" {
				if _, err := tx.exec(ctx, `DELETE FROM sessions WHERE id = ?`, e.ID); err != nil {
					return err
				}
			}
			if e.SID == "" {
				continue
			}
			for _, table := range []string{"refresh_families", "refresh_tokens", "access_tokens"} {
				if _, err := tx.exec(ctx, `UPDATE `+table+` SET revoked = TRUE WHERE subject = ? AND session_id = ?`, e.UserID, e.SID); err != nil {
					return err
				}
			}
			// A code minted in the session and not yet redeemed can no
			// longer be; the session's clients are told now and forgotten.
			if _, err := tx.exec(ctx, `DELETE FROM auth_requests WHERE session_id = ? AND subject = ?`, e.SID, e.UserID); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `DELETE FROM session_clients WHERE sid = ?`, e.SID); err != nil {
				return err
			}
		}
		if err := queueOutbox(ctx, tx, msgs); err != nil {
			return s.insertErr(err)
		}
		return nil
	})
	if err != nil {
		return s.fail("end sessions", err)
	}
	return nil
}

func (s *Store) ForgetSessionClients(ctx context.Context, before time.Time) (int, error) {
	n, err := s.sweepBy(ctx, "session_clients", "sid", "created_at < ?", nanos(before))
	if err != nil {
		return n, s.fail("forget session clients", err)
	}
	return n, nil
}

func (s *Store) ExpiredSessions(ctx context.Context, now, idleBefore time.Time, limit int) ([]storage.Session, error) {
	rows, err := s.read.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE expires_at < ? OR last_seen < ?
		ORDER BY expires_at, id LIMIT ?`, nanos(now), nanos(idleBefore), limit)
	ss, err := list(rows, err, scanSession)
	if err != nil {
		return nil, s.fail("expired sessions", err)
	}
	return ss, nil
}

// OutboxClaimPerClient is how many of one client's messages a claim takes
// at most: an app that stalls every delivery until the timeout then holds
// up a batch by that many, never another app's logouts behind a queue of
// its own.
const OutboxClaimPerClient = 4

// ClaimOutbox is one UPDATE … RETURNING: the outer lease_until check is
// re-evaluated on the row as another claim left it (PostgreSQL at READ
// COMMITTED; SQLite has one writer), so two claims never both get a row.
func (s *Store) ClaimOutbox(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]storage.OutboxMessage, error) {
	var out []storage.OutboxMessage
	err := s.tx(ctx, func(tx db) error {
		rows, err := tx.query(ctx, `UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, last_attempt_at = ?
			WHERE id IN (SELECT id FROM (SELECT id, next_attempt_at,
					ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY next_attempt_at, id) AS nth
				FROM outbox WHERE status = ? AND next_attempt_at <= ? AND lease_until <= ?) due
				WHERE nth <= ? ORDER BY next_attempt_at, id LIMIT ?)
			AND status = ? AND lease_until <= ?
			RETURNING `+outboxCols,
			owner, nanos(now.Add(lease)), nanos(now), string(storage.OutboxPending), nanos(now), nanos(now),
			OutboxClaimPerClient, limit, string(storage.OutboxPending), nanos(now))
		out, err = list(rows, err, scanOutbox)
		return err
	})
	if err != nil {
		return nil, s.fail("claim outbox", err)
	}
	slices.SortFunc(out, func(a, b storage.OutboxMessage) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Store) FinishOutbox(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM outbox WHERE id = ?`, id); err != nil {
		return s.fail("finish outbox", err)
	}
	return nil
}

func (s *Store) RetryOutbox(ctx context.Context, id, owner string, next time.Time, lastErr string) error {
	if err := s.execOne(ctx, `UPDATE outbox SET next_attempt_at = ?, last_error = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND lease_owner = ? AND status = ?`, nanos(next), lastErr, id, owner, string(storage.OutboxPending)); err != nil {
		return s.fail("retry outbox", err)
	}
	return nil
}

func (s *Store) FailOutbox(ctx context.Context, id, owner, lastErr string) error {
	if err := s.execOne(ctx, `UPDATE outbox SET status = ?, last_error = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND lease_owner = ? AND status = ?`, string(storage.OutboxFailed), lastErr, id, owner, string(storage.OutboxPending)); err != nil {
		return s.fail("fail outbox", err)
	}
	return nil
}

func (s *Store) RequeueOutbox(ctx context.Context, id string, now time.Time) error {
	if err := s.execOne(ctx, `UPDATE outbox SET status = ?, attempts = 0, queued_at = ?, next_attempt_at = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND status = ?`, string(storage.OutboxPending), nanos(now), nanos(now), id, string(storage.OutboxFailed)); err != nil {
		return s.fail("requeue outbox", err)
	}
	return nil
}

func (s *Store) OutboxMessage(ctx context.Context, id string) (storage.OutboxMessage, error) {
	m, err := scanOutbox(s.read.queryRow(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id))
	if err != nil {
		return storage.OutboxMessage{}, s.fail("outbox message", s.noRows(err))
	}
	return m, nil
}

func (s *Store) OutboxMessages(ctx context.Context, clientID string, status storage.OutboxStatus, limit int) ([]storage.OutboxMessage, error) {
	q, args := `SELECT `+outboxCols+` FROM outbox WHERE TRUE`, []any{}
	if clientID != "" {
		q, args = q+` AND client_id = ?`, append(args, clientID)
	}
	if status != "" {
		q, args = q+` AND status = ?`, append(args, string(status))
	}
	rows, err := s.read.query(ctx, q+` ORDER BY queued_at DESC, id LIMIT ?`, append(args, limit)...)
	ms, err := list(rows, err, scanOutbox)
	if err != nil {
		return nil, s.fail("outbox messages", err)
	}
	return ms, nil
}

func (s *Store) OutboxSummaries(ctx context.Context) ([]storage.OutboxSummary, error) {
	rows, err := s.read.query(ctx, `SELECT client_id,
		COUNT(*) FILTER (WHERE status = ?), COUNT(*) FILTER (WHERE status = ?), MAX(last_attempt_at),
		COALESCE((SELECT e.last_error FROM outbox e WHERE e.client_id = o.client_id AND e.last_error != ''
			ORDER BY e.last_attempt_at DESC, e.id LIMIT 1), '')
		FROM outbox o GROUP BY client_id ORDER BY client_id`, string(storage.OutboxPending), string(storage.OutboxFailed))
	sums, err := list(rows, err, func(r Row) (storage.OutboxSummary, error) {
		var sum storage.OutboxSummary
		var pending, failed int64
		err := r.Scan(&sum.ClientID, &pending, &failed, at(&sum.LastAttemptAt), &sum.LastError)
		sum.Pending, sum.Failed = int(pending), int(failed)
		return sum, err
	})
	if err != nil {
		return nil, s.fail("outbox summaries", err)
	}
	return sums, nil
}

func (s *Store) DeleteGivenUpOutbox(ctx context.Context, before time.Time) (int, error) {
	n, err := s.sweep(ctx, "outbox", "status = ? AND last_attempt_at < ?", string(storage.OutboxFailed), nanos(before))
	if err != nil {
		return n, s.fail("delete given-up outbox", err)
	}
	return n, nil
}
