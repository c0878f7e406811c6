package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/storage"
)

// Throttle failures are rows (scope, key, at). A key's next failure has no
// row to lock yet, so RecordFailure reads the states and inserts in one
// transaction under the keys' throttle locks (Locks.Throttle; SQLite runs
// one write transaction at a time): concurrent calls on a key queue, and
// each sees the rows of the ones before it.

func (s *Store) CheckThrottle(ctx context.Context, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	states, err := throttleStates(ctx, s.read, keys, rules, now)
	if err != nil {
		return nil, s.fail("check throttle", err)
	}
	return states, nil
}

// lockThrottle takes the throttle locks of keys for the rest of tx.
func (s *Store) lockThrottle(ctx context.Context, tx db, keys []storage.ThrottleKey) error {
	if s.locks == nil {
		return nil
	}
	return s.locks.Throttle(ctx, tx.q, keys)
}

func (s *Store) RecordFailure(ctx context.Context, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
	var states map[storage.ThrottleKey]storage.ThrottleState
	err := s.tx(ctx, func(tx db) error {
		var err error
		states = nil
		if err := s.lockThrottle(ctx, tx, keys); err != nil {
			return err
		}
		if states, err = throttleStates(ctx, tx, keys, rules, now); err != nil {
			return err
		}
		if !storage.ThrottledUntil(states).IsZero() {
			return storage.ErrThrottled
		}
		for k := range states { // each key once
			_, err := tx.exec(ctx, `INSERT INTO throttle_failures (scope, key, at) VALUES (?, ?, ?)`,
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
		return states, s.fail("record failure", err)
	case err != nil:
		return nil, s.fail("record failure", err)
	}
	return states, nil
}

// ReleaseFailure deletes one row per key, under the keys' throttle locks
// like RecordFailure.
func (s *Store) ReleaseFailure(ctx context.Context, keys []storage.ThrottleKey, at time.Time) error {
	err := s.tx(ctx, func(tx db) error {
		if err := s.lockThrottle(ctx, tx, keys); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := tx.exec(ctx, `DELETE FROM throttle_failures WHERE `+s.d.RowID+` =
				(SELECT `+s.d.RowID+` FROM throttle_failures WHERE scope = ? AND key = ? AND at = ? LIMIT 1)`, k.Scope, k.Key, nanos(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("release failure", err)
	}
	return nil
}

func (s *Store) ClearThrottle(ctx context.Context, keys []storage.ThrottleKey) error {
	err := s.tx(ctx, func(tx db) error {
		for _, k := range keys {
			if _, err := tx.exec(ctx, `DELETE FROM throttle_failures WHERE scope = ? AND key = ?`, k.Scope, k.Key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("clear throttle", err)
	}
	return nil
}

// DistinctAccountsFromIP scans the keys starting with "ip|" as a range:
// '}' is the byte after '|', and the key column sorts bytewise.
func (s *Store) DistinctAccountsFromIP(ctx context.Context, ip string, since time.Time) (int, error) {
	prefix := storage.AccountIPKey("", ip).Key
	var n int
	err := s.read.queryRow(ctx, `SELECT count(DISTINCT key) FROM throttle_failures
		WHERE scope = ? AND key >= ? AND key < ? AND at >= ?`,
		storage.ScopeAccountIP, prefix, ip+"}", nanos(since)).Scan(&n)
	if err != nil {
		return 0, s.fail("distinct accounts from IP", err)
	}
	return n, nil
}

func (s *Store) DeleteOldThrottleRows(ctx context.Context, scope string, before time.Time) (int, error) {
	// Failure rows have no id: the backend's row identity stands in.
	n, err := s.sweepBy(ctx, "throttle_failures", s.d.RowID, "scope = ? AND at < ?", scope, nanos(before))
	if err != nil {
		return n, s.fail("delete old throttle rows", err)
	}
	return n, nil
}

// throttleStates computes the state of each key at now.
func throttleStates(ctx context.Context, q db, keys []storage.ThrottleKey, rules map[string]storage.ThrottleRule, now time.Time) (map[storage.ThrottleKey]storage.ThrottleState, error) {
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
func throttleState(ctx context.Context, q db, k storage.ThrottleKey, r storage.ThrottleRule, now time.Time) (storage.ThrottleState, error) {
	var st storage.ThrottleState
	var newest *int64
	err := q.queryRow(ctx, `SELECT count(*) FILTER (WHERE at > ?), max(at)
		FROM throttle_failures WHERE scope = ? AND key = ?`,
		nanos(now.Add(-r.Window)), k.Scope, k.Key).Scan(&st.Failures, &newest)
	if err != nil || newest == nil {
		return st, err
	}
	last := fromNanos(*newest)
	var n int
	err = q.queryRow(ctx, `SELECT count(*) FROM throttle_failures WHERE scope = ? AND key = ? AND at > ?`,
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
	err := s.tx(ctx, func(tx db) error {
		// One lock per set: concurrent reservations queue.
		if err := s.lockThrottle(ctx, tx, []storage.ThrottleKey{{Scope: scope, Key: group}}); err != nil {
			return err
		}
		var known bool
		if err := tx.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM throttle_failures WHERE scope = ? AND key = ? AND at >= ?)`,
			scope, key, since).Scan(&known); err != nil {
			return err
		}
		if !known {
			var n int
			if err := tx.queryRow(ctx, `SELECT count(DISTINCT key) FROM throttle_failures
				WHERE scope = ? AND key >= ? AND key < ? AND at >= ?`, scope, group+"|", group+"}", since).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return storage.ErrThrottled
			}
		}
		_, err := tx.exec(ctx, `INSERT INTO throttle_failures (scope, key, at) VALUES (?, ?, ?)`, scope, key, nanos(now))
		return err
	})
	if err != nil {
		return s.fail("reserve member", err)
	}
	return nil
}
