package sqlite_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlstore"
)

// Expired rows are swept a batch at a time, each batch a transaction of
// its own, so writes made meanwhile go in between the batches instead of
// waiting behind one DELETE of the whole backlog (issue 17).
func TestSweepDeletesInBatchesWhileWritesGoOn(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "k.db")
	s := open(t, path)
	db := raw(t, path)

	// A backlog of expired requests, copied from one made the usual way,
	// and one request still live.
	seed := storage.AuthRequest{ID: "seed", ClientID: "app", RedirectURI: "https://app.example/cb",
		Scopes: []string{"openid"}, CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(-time.Minute)}
	if err := s.CreateAuthRequest(ctx, seed); err != nil {
		t.Fatal(err)
	}
	live := seed
	live.ID, live.ExpiresAt = "live", t0.Add(time.Minute)
	if err := s.CreateAuthRequest(ctx, live); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT name FROM pragma_table_info('auth_requests') WHERE name != 'id'`)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	const expired = 3*sqlstore.SweepBatch + 17
	list := strings.Join(cols, ", ")
	exec(t, db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO auth_requests (id, `+list+`) SELECT 'old-' || i, `+list+` FROM n, auth_requests WHERE id = 'seed'`,
		expired-1)

	// Every deleted row notes how many writes had been made by then; one
	// DELETE of everything would see a single count.
	exec(t, db, `CREATE TABLE swept (writes INTEGER NOT NULL)`)
	exec(t, db, `CREATE TRIGGER note_sweep AFTER DELETE ON auth_requests
		BEGIN INSERT INTO swept (writes) SELECT count(*) FROM auth_requests WHERE id >= 'new-' AND id < 'new.'; END`)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes int
	var writeErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// A write through the store: it takes the writer, as a token
			// grant would.
			r := seed
			r.ID, r.ExpiresAt = fmt.Sprintf("new-%d", i), t0.Add(time.Hour)
			if err := s.CreateAuthRequest(ctx, r); err != nil {
				writeErr = err
				return
			}
			writes++
		}
	})
	// Let the writer get going first.
	for {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM auth_requests WHERE id >= 'new-' AND id < 'new.'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	n, err := s.DeleteExpiredAuthRequests(ctx, t0)
	close(stop)
	wg.Wait()
	if err != nil || writeErr != nil {
		t.Fatal(err, writeErr)
	}
	if n != expired {
		t.Errorf("swept %d requests, want %d", n, expired)
	}
	var left, counts int
	if err := db.QueryRow(`SELECT count(*) FROM auth_requests WHERE expires_at < ?`, storage.UnixNanos(t0)).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d expired requests left", left)
	}
	if _, err := s.AuthRequestByID(ctx, "live", t0); err != nil {
		t.Errorf("the live request: %v", err)
	}
	if err := db.QueryRow(`SELECT count(DISTINCT writes) FROM swept`).Scan(&counts); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows swept while %d writes went on; the sweep saw %d write counts", n, writes, counts)
	if counts < 2 {
		t.Errorf("the sweep saw one write count: writes waited for the whole sweep")
	}
}
