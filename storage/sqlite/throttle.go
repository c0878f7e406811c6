package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

// Throttle failures are rows (scope, key, at). RecordFailure reads the
// states and inserts in one BEGIN IMMEDIATE transaction on the single writer
// connection, so concurrent calls queue and each sees the rows of the ones
// before it.

func (s *Store) CheckThrottle(ctx context.Context, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	states, err := throttleStates(ctx, s.r, keys, rules, now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: check throttle: %w", err)
	}
	return states, nil
}

func (s *Store) RecordFailure(ctx context.Context, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	var states map[storage.ThrottleKey]storage.ThrottleState
	err := s.tx(ctx, func(tx *txn) error {
		var err error
		if states, err = throttleStates(ctx, tx, keys, rules, now); err != nil {
			return err
		}
		if !storage.ThrottledUntil(states).IsZero() {
			return storage.ErrThrottled
		}
		for k := range states { // each key once
			_, err := tx.ExecContext(ctx, `INSERT INTO throttle_failures (scope, key, at) VALUES (?, ?, ?)`,
				k.Scope, k.Key, nanos(now))
			if err != nil {
				return err
			}
		}
		states, err = throttleStates(ctx, tx, keys, rules, now)
		return err
	})
	switch {
	case errors.Is(err, storage.ErrThrottled):
		return states, fmt.Errorf("sqlite: record failure: %w", err)
	case err != nil:
		return nil, fmt.Errorf("sqlite: record failure: %w", err)
	}
	return states, nil
}

// ReleaseFailure deletes one row per key; the single writer serializes it
// with RecordFailure.
func (s *Store) ReleaseFailure(ctx context.Context, keys []storage.ThrottleKey, at time.Time) error {
	err := s.tx(ctx, func(tx *txn) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `DELETE FROM throttle_failures WHERE rowid =
				(SELECT rowid FROM throttle_failures WHERE scope = ? AND key = ? AND at = ? LIMIT 1)`, k.Scope, k.Key, nanos(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: release failure: %w", err)
	}
	return nil
}

func (s *Store) ClearThrottle(ctx context.Context, keys []storage.ThrottleKey) error {
	err := s.tx(ctx, func(tx *txn) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, `DELETE FROM throttle_failures WHERE scope = ? AND key = ?`, k.Scope, k.Key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: clear throttle: %w", err)
	}
	return nil
}

// DistinctAccountsFromIP scans the keys starting with "ip|" as a range:
// '}' is the byte after '|'.
func (s *Store) DistinctAccountsFromIP(ctx context.Context, ip string, since time.Time) (int, error) {
	prefix := storage.AccountIPKey("", ip).Key
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(DISTINCT key) FROM throttle_failures
		WHERE scope = ? AND key >= ? AND key < ? AND at >= ?`,
		storage.ScopeAccountIP, prefix, ip+"}", nanos(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: distinct accounts from IP: %w", err)
	}
	return n, nil
}

func (s *Store) DeleteOldThrottleRows(ctx context.Context, before time.Time) (int, error) {
	n, err := affected(s.exec(ctx, `DELETE FROM throttle_failures WHERE at < ?`, nanos(before)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete old throttle rows: %w", err)
	}
	return n, nil
}

// queryRower is *sql.DB or *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// throttleStates computes the state of each key at now.
func throttleStates(ctx context.Context, q queryRower, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	states := make(map[storage.ThrottleKey]storage.ThrottleState, len(keys))
	for _, k := range keys {
		r, ok := rules[k.Scope]
		if !ok {
			return nil, fmt.Errorf("no throttle rule for scope %q", k.Scope)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("throttle rule for scope %q: %w", k.Scope, err)
		}
		st, err := throttleState(ctx, q, k, r, now)
		if err != nil {
			return nil, err
		}
		states[k] = st
	}
	return states, nil
}

// throttleState counts the failures in the window at now, and derives the
// block from the newest failure and the failures in the window ending at it:
// the count that failure saw when it was recorded.
func throttleState(ctx context.Context, q queryRower, k storage.ThrottleKey, r storage.ThrottleRule, now time.Time) (storage.ThrottleState, error) {
	var st storage.ThrottleState
	var newest sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE at > ?), max(at)
		FROM throttle_failures WHERE scope = ? AND key = ?`,
		nanos(now.Add(-r.Window)), k.Scope, k.Key).Scan(&st.Failures, &newest)
	if err != nil || !newest.Valid {
		return st, err
	}
	last := fromNanos(newest.Int64)
	var n int
	err = q.QueryRowContext(ctx, `SELECT count(*) FROM throttle_failures WHERE scope = ? AND key = ? AND at > ?`,
		k.Scope, k.Key, nanos(last.Add(-r.Window))).Scan(&n)
	if err != nil {
		return st, err
	}
	if until := r.BlockedUntil(n, last); now.Before(until) {
		st.BlockedUntil = until
	}
	return st, nil
}

func (s *Store) ReserveMember(ctx context.Context, scope, group, member string, limit int, window time.Duration, now time.Time) error {
	key := group + "|" + member
	since := nanos(now.Add(-window))
	err := s.tx(ctx, func(tx *txn) error {
		var known bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM throttle_failures WHERE scope = ? AND key = ? AND at >= ?)`,
			scope, key, since).Scan(&known); err != nil {
			return err
		}
		if !known {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(DISTINCT key) FROM throttle_failures
				WHERE scope = ? AND key >= ? AND key < ? AND at >= ?`, scope, group+"|", group+"}", since).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return storage.ErrThrottled
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO throttle_failures (scope, key, at) VALUES (?, ?, ?)`, scope, key, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: reserve member: %w", err)
	}
	return nil
}
