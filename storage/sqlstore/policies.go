package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/keystep/keystep/storage"
)

const policyCols = `number, document, parent, author, reason, diff, created_at`

func scanPolicyVersion(sc Row) (storage.PolicyVersion, error) {
	var v storage.PolicyVersion
	err := sc.Scan(&v.Number, &v.Document, &v.Parent, &v.Author, &v.Reason, &v.Diff, at(&v.CreatedAt))
	return v, err
}

func (s *Store) CreatePolicyVersion(ctx context.Context, v storage.PolicyVersion) (storage.PolicyVersion, error) {
	err := s.tx(ctx, func(tx db) error {
		// The pointer row is read for update, so two saves from the same
		// parent are ordered and the second sees the first's version.
		var active int64
		err := tx.queryRow(ctx, `SELECT number FROM policy_active WHERE id = 1`+s.d.ForUpdate).Scan(&active)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if active != v.Parent {
			return storage.ErrConflict
		}
		var last int64
		if err := tx.queryRow(ctx, `SELECT coalesce(max(number), 0) FROM policy_versions`).Scan(&last); err != nil {
			return err
		}
		v.Number = last + 1
		if _, err := tx.exec(ctx, `INSERT INTO policy_versions (`+policyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			v.Number, v.Document, v.Parent, v.Author, v.Reason, v.Diff, nanos(v.CreatedAt)); err != nil {
			return err
		}
		if active == 0 {
			_, err = tx.exec(ctx, `INSERT INTO policy_active (id, number) VALUES (1, ?)`, v.Number)
		} else {
			err = tx.execOne(ctx, `UPDATE policy_active SET number = ? WHERE id = 1`, v.Number)
		}
		return err
	})
	if err != nil && s.d.IsUnique(err) {
		// Two first versions, or two saves racing past the pointer row
		// before either wrote it: one wins, the other saved from a
		// parent that is no longer active.
		err = storage.ErrConflict
	}
	if err != nil {
		return storage.PolicyVersion{}, s.fail("create policy version", err)
	}
	return v, nil
}

func (s *Store) ActivePolicyNumber(ctx context.Context) (int64, error) {
	var n int64
	err := s.read.queryRow(ctx, `SELECT number FROM policy_active WHERE id = 1`).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.fail("active policy number", err)
	}
	return n, nil
}

func (s *Store) PolicyVersionByNumber(ctx context.Context, n int64) (storage.PolicyVersion, error) {
	v, err := scanPolicyVersion(s.read.queryRow(ctx, `SELECT `+policyCols+` FROM policy_versions WHERE number = ?`, n))
	if err != nil {
		return storage.PolicyVersion{}, s.fail("policy version", s.noRows(err))
	}
	return v, nil
}

func (s *Store) ListPolicyVersions(ctx context.Context, limit int) ([]storage.PolicyVersion, error) {
	rows, err := s.read.query(ctx, `SELECT number, '', parent, author, reason, diff, created_at
		FROM policy_versions ORDER BY number DESC LIMIT ?`, limit)
	vs, err := list(rows, err, scanPolicyVersion)
	if err != nil {
		return nil, s.fail("list policy versions", err)
	}
	return vs, nil
}
