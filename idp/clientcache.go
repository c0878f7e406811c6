package idp

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/keystep/keystep/storage"
)

// clientCacheTTL bounds how long a client read from storage is reused.
// Changes made through this server (admin console, NewServer itself) take
// effect at once; changes made by another process (the CLI, another instance
// on the same PostgreSQL) take effect within this time.
const clientCacheTTL = 2 * time.Second

// clientCache is a storage.Store whose client reads are cached for
// clientCacheTTL. Every token request authenticates its client, and reading
// it was a tenth of a refresh grant's server time (issue 9). Unknown IDs are
// not cached, so arbitrary client_id values cannot grow the map.
type clientCache struct {
	storage.Store
	now func() time.Time

	mu      sync.Mutex
	gen     uint64 // bumped by every write, so a read that raced one is not kept
	clients map[string]cachedClient
}

type cachedClient struct {
	c       storage.Client
	expires time.Time
}

func newClientCache(st storage.Store, now func() time.Time) *clientCache {
	return &clientCache{Store: st, now: now, clients: map[string]cachedClient{}}
}

func (s *clientCache) ClientByID(ctx context.Context, id string) (storage.Client, error) {
	now := s.now()
	s.mu.Lock()
	e, ok := s.clients[id]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Before(e.expires) {
		return cloneClient(e.c), nil
	}
	c, err := s.Store.ClientByID(ctx, id)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	if s.gen == gen {
		s.clients[id] = cachedClient{c: cloneClient(c), expires: now.Add(clientCacheTTL)}
	}
	s.mu.Unlock()
	return c, nil
}

// forget drops every cached client: writes are rare, and a dropped entry
// costs one read.
func (s *clientCache) forget() {
	s.mu.Lock()
	s.gen++
	clear(s.clients)
	s.mu.Unlock()
}

func (s *clientCache) CreateClient(ctx context.Context, c storage.Client) error {
	defer s.forget()
	return s.Store.CreateClient(ctx, c)
}

func (s *clientCache) UpdateClient(ctx context.Context, c storage.Client) error {
	defer s.forget()
	return s.Store.UpdateClient(ctx, c)
}

func (s *clientCache) DeleteClient(ctx context.Context, id string) error {
	defer s.forget()
	return s.Store.DeleteClient(ctx, id)
}

// cloneClient copies the slices, so no caller can change a cached client.
func cloneClient(c storage.Client) storage.Client {
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	return c
}
