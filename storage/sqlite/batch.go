package sqlite

import (
	"context"
	"errors"
	"fmt"
)

// Group commit. Every token grant writes one short transaction, and they all
// queue for the writer's one connection; under load the queue, not the
// work, set the pace: a writer descheduled mid-transaction keeps everyone
// waiting, and each transaction rewrote the same hot pages (the tables'
// last pages, the expiry indexes) into the WAL (issue 9). So every write
// (Store.tx, Store.exec) hands its work to one goroutine, which runs
// whatever has queued up in one transaction, each caller's part in a
// savepoint of its own.
//
// A caller sees exactly what a transaction of its own would give: its part
// runs after the parts queued before it (and sees their writes, as it would
// once they had committed), a part that fails (or panics) is rolled back to
// its savepoint without touching the others, and the caller hears back only
// once the whole batch has committed, with the commit's error if it failed.
// A caller whose context has ended before its part starts is skipped; once
// started, a part runs to its end (see txn).

// maxBatch bounds one transaction, so a burst cannot hold the writer long.
const maxBatch = 64

var errClosed = errors.New("sqlite: store closed")

type batchOp struct {
	ctx  context.Context
	fn   func(tx *txn) error
	done chan error
}

// batched runs fn in a write transaction shared with other callers of
// batched. fn must not use s.w or s.r.
func (s *Store) batched(ctx context.Context, fn func(tx *txn) error) error {
	op := &batchOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.batchq <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return errClosed
	}
	// Once queued, the part runs or is skipped as a whole; wait for which.
	return <-op.done
}

func (s *Store) batchLoop() {
	defer close(s.batchDone)
	for {
		var ops []*batchOp
		select {
		case op := <-s.batchq:
			ops = append(ops, op)
		case <-s.stop:
			s.drainBatches()
			return
		}
	more:
		for len(ops) < maxBatch {
			select {
			case op := <-s.batchq:
				ops = append(ops, op)
			default:
				break more
			}
		}
		s.runBatch(ops)
	}
}

// drainBatches fails what was queued when the store closed.
func (s *Store) drainBatches() {
	for {
		select {
		case op := <-s.batchq:
			op.done <- errClosed
		default:
			return
		}
	}
}

func (s *Store) runBatch(ops []*batchOp) {
	s.batches.Add(1)
	errs := make([]error, len(ops))
	ctx := context.Background() // one caller's deadline must not fail the others
	err := s.txNow(ctx, func(tx *txn) error {
		if len(ops) == 1 { // no savepoint needed: a failure rolls back the transaction
			if errs[0] = ops[0].ctx.Err(); errs[0] == nil {
				errs[0] = runPart(ops[0].fn, tx)
			}
			return errs[0]
		}
		for i, op := range ops {
			if errs[i] = op.ctx.Err(); errs[i] != nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
				return err
			}
			if errs[i] = runPart(op.fn, tx); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO op`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE op`); err != nil {
				return err
			}
		}
		return nil
	})
	for i, op := range ops {
		if errs[i] == nil {
			errs[i] = err // the commit failed: nothing of the batch was stored
		}
		op.done <- errs[i]
	}
}

// runPart runs one caller's part. A panic in it becomes that part's error,
// as it would have stayed in that caller's request had the part run there.
func runPart(fn func(tx *txn) error, tx *txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: panic in a write: %v", p)
		}
	}()
	return fn(tx)
}
