package idp

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

func TestClientCache(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	c := newClientCache(st, now)

	rp := storage.Client{ID: "rp", Name: "RP", RedirectURIs: []string{"https://rp.example/cb"}, GrantTypes: []string{"authorization_code"}}
	if err := c.CreateClient(ctx, rp); err != nil {
		t.Fatal(err)
	}
	name := func() string {
		t.Helper()
		got, err := c.ClientByID(ctx, "rp")
		if err != nil {
			t.Fatal(err)
		}
		return got.Name
	}
	if got := name(); got != "RP" {
		t.Fatalf("name %q, want RP", got)
	}

	// A change made behind the cache (another process) shows after the TTL.
	changed := rp
	changed.Name = "changed elsewhere"
	if err := st.UpdateClient(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if got := name(); got != "RP" {
		t.Errorf("within the TTL: name %q, want the cached RP", got)
	}
	advance(clientCacheTTL)
	if got := name(); got != "changed elsewhere" {
		t.Errorf("after the TTL: name %q, want the stored one", got)
	}

	// A change made through the cache shows at once.
	changed.Name = "changed here"
	if err := c.UpdateClient(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if got := name(); got != "changed here" {
		t.Errorf("after an update through the cache: name %q", got)
	}
	if err := c.DeleteClient(ctx, "rp"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClientByID(ctx, "rp"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted client: err %v, want ErrNotFound", err)
	}

	// A caller changing what it got does not change the cache.
	if err := c.CreateClient(ctx, rp); err != nil {
		t.Fatal(err)
	}
	got, _ := c.ClientByID(ctx, "rp")
	got.RedirectURIs[0] = "https://evil.example/cb"
	got, _ = c.ClientByID(ctx, "rp")
	if got.RedirectURIs[0] != "https://rp.example/cb" {
		t.Errorf("cached redirect URI changed to %q through a returned client", got.RedirectURIs[0])
	}

	// Unknown IDs are not kept.
	for _, id := range []string{"nope1", "nope2"} {
		if _, err := c.ClientByID(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("unknown client %q: err %v", id, err)
		}
	}
	c.mu.Lock()
	n := len(c.clients)
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("cache holds %d clients, want 1", n)
	}
}

// A read that started before a write must not put its stale result back
// after the write has cleared the cache.
func TestClientCacheReadRacingWrite(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rp := storage.Client{ID: "rp", Name: "old"}
	if err := st.CreateClient(ctx, rp); err != nil {
		t.Fatal(err)
	}
	s := &slowRead{Store: st, read: make(chan struct{}), resume: make(chan struct{})}
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	c := newClientCache(s, func() time.Time { return t0 }) // never past the TTL: only the write clears the cache
	done := make(chan storage.Client)
	go func() {
		got, _ := c.ClientByID(ctx, "rp")
		done <- got
	}()
	<-s.read // the read has its (old) row
	rp.Name = "new"
	if err := c.UpdateClient(ctx, rp); err != nil {
		t.Fatal(err)
	}
	close(s.resume)
	if got := <-done; got.Name != "old" {
		t.Fatalf("racing read got %q, want old", got.Name)
	}
	s.read = nil // later reads do not wait
	got, err := c.ClientByID(ctx, "rp")
	if err != nil || got.Name != "new" {
		t.Errorf("after the write: %q, %v; want new", got.Name, err)
	}
}

// slowRead holds its first client read after the row is read.
type slowRead struct {
	storage.Store
	read, resume chan struct{}
}

func (s *slowRead) ClientByID(ctx context.Context, id string) (storage.Client, error) {
	c, err := s.Store.ClientByID(ctx, id)
	if s.read != nil {
		s.read <- struct{}{}
		<-s.resume
	}
	return c, err
}
