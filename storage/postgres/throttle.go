package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keystep/keystep/storage"
)

// Throttle failures are rows (scope, key, at). A key's next failure has no
// row to lock yet, so RecordFailure takes a transaction-level advisory lock
// per key before it reads the states: concurrent calls on a key queue, and
// each reads the rows of the ones before it. The locks are taken in the
// order of their lock keys, so two calls sharing several keys cannot
// deadlock.

func (s *Store) CheckThrottle(ctx context.Context, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	states, err := throttleStates(ctx, s.pool, keys, rules, now)
	if err != nil {
		return nil, fmt.Errorf("postgres: check throttle: %w", err)
	}
	return states, nil
}

func (s *Store) RecordFailure(ctx context.Context, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	var states map[storage.ThrottleKey]storage.ThrottleState
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		states = nil
		if err := lockKeys(ctx, tx, keys); err != nil {
			return err
		}
		if states, err = throttleStates(ctx, tx, keys, rules, now); err != nil {
			return err
		}
		if !storage.ThrottledUntil(states).IsZero() {
			return storage.ErrThrottled
		}
		for k := range states { // each key once
			_, err := tx.Exec(ctx, `INSERT INTO throttle_failures (scope, key, at) VALUES ($1, $2, $3)`,
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
		return states, fmt.Errorf("postgres: record failure: %w", err)
	case err != nil:
		return nil, fmt.Errorf("postgres: record failure: %w", err)
	}
	return states, nil
}

// lockKeys takes the advisory locks of keys, each once, in ascending order.
func lockKeys(ctx context.Context, tx pgx.Tx, keys []storage.ThrottleKey) error {
	ids := make([]int32, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, keyLock(k))
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockThrottle, id); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseFailure takes the keys' advisory locks, like RecordFailure, and
// deletes one row per key.
func (s *Store) ReleaseFailure(ctx context.Context, keys []storage.ThrottleKey, at time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockKeys(ctx, tx, keys); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := tx.Exec(ctx, `DELETE FROM throttle_failures WHERE ctid =
				(SELECT ctid FROM throttle_failures WHERE scope = $1 AND key = $2 AND at = $3 LIMIT 1)`, k.Scope, k.Key, nanos(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: release failure: %w", err)
	}
	return nil
}

func (s *Store) ClearThrottle(ctx context.Context, keys []storage.ThrottleKey) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		for _, k := range keys {
			if _, err := tx.Exec(ctx, `DELETE FROM throttle_failures WHERE scope = $1 AND key = $2`, k.Scope, k.Key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: clear throttle: %w", err)
	}
	return nil
}

// DistinctAccountsFromIP scans the keys starting with "ip|" as a range:
// '}' is the byte after '|', and the key column sorts bytewise (COLLATE "C").
func (s *Store) DistinctAccountsFromIP(ctx context.Context, ip string, since time.Time) (int, error) {
	prefix := storage.AccountIPKey("", ip).Key
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(DISTINCT key) FROM throttle_failures
		WHERE scope = $1 AND key >= $2 AND key < $3 AND at >= $4`,
		storage.ScopeAccountIP, prefix, ip+"}", nanos(since)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: distinct accounts from IP: %w", err)
	}
	return n, nil
}

func (s *Store) DeleteOldThrottleRows(ctx context.Context, before time.Time) (int, error) {
	n, err := affected(s.pool.Exec(ctx, `DELETE FROM throttle_failures WHERE at < $1`, nanos(before)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete old throttle rows: %w", err)
	}
	return n, nil
}

// throttleStates computes the state of each key at now.
func throttleStates(ctx context.Context, q querier, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
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
func throttleState(ctx context.Context, q querier, k storage.ThrottleKey, r storage.ThrottleRule, now time.Time) (storage.ThrottleState, error) {
	var st storage.ThrottleState
	var newest *int64
	err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE at > $1), max(at)
		FROM throttle_failures WHERE scope = $2 AND key = $3`,
		nanos(now.Add(-r.Window)), k.Scope, k.Key).Scan(&st.Failures, &newest)
	if err != nil || newest == nil {
		return st, err
	}
	last := fromNanos(*newest)
	var n int
	err = q.QueryRow(ctx, `SELECT count(*) FROM throttle_failures WHERE scope = $1 AND key = $2 AND at > $3`,
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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// One lock per set: concurrent reservations queue.
		if err := lockKeys(ctx, tx, []storage.ThrottleKey{{Scope: scope, Key: group}}); err != nil {
			return err
		}
		var known bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM throttle_failures WHERE scope = $1 AND key = $2 AND at >= $3)`,
			scope, key, since).Scan(&known); err != nil {
			return err
		}
		if !known {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(DISTINCT key) FROM throttle_failures
				WHERE scope = $1 AND key >= $2 AND key < $3 AND at >= $4`, scope, group+"|", group+"}", since).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return storage.ErrThrottled
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO throttle_failures (scope, key, at) VALUES ($1, $2, $3)`, scope, key, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: reserve member: %w", err)
	}
	return nil
}
