package idp

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keystep/keystep/storage"
)

// tokenStateTTL bounds how long the answer "this JWT access token is live"
// is reused at userinfo and introspection. A JWT access token has no row:
// it is live while its family is (storage.Family). Revocations made through
// this server — /revoke, reuse detection, a replayed code, the console, the
// portal — forget every cached answer at once; one made by another process
// (the CLI, another instance on the same PostgreSQL) is seen within this
// time. "Revoked" and "expired" are final and kept until the entry goes.
const (
	tokenStateTTL = 2 * time.Second
	maxStates     = 4096 // then the cache starts over
)

// tokenStateCache is a storage.Store whose RowlessAccessTokenFamily answers
// are cached for tokenStateTTL, and whose revocations forget them.
type tokenStateCache struct {
	storage.Store
	now func() time.Time

	mu     sync.Mutex
	gen    uint64 // bumped by every revocation, so a read that raced one is not kept
	states map[string]tokenState
}

type tokenState struct {
	family  storage.Family
	err     error
	expires time.Time
}

func newTokenStateCache(st storage.Store, now func() time.Time) *tokenStateCache {
	return &tokenStateCache{Store: st, now: now, states: map[string]tokenState{}}
}

func (s *tokenStateCache) RowlessAccessTokenFamily(ctx context.Context, id, familyID string, at time.Time) (storage.Family, error) {
	key := familyID + "\x00" + id
	now := s.now()
	s.mu.Lock()
	e, ok := s.states[key]
	gen := s.gen
	s.mu.Unlock()
	if ok && now.Before(e.expires) && (e.err != nil || e.family.ID == "" || !at.After(e.family.ExpiresAt)) {
		return e.family, e.err
	}
	f, err := s.Store.RowlessAccessTokenFamily(ctx, id, familyID, at)
	if err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrExpired) {
		return f, err // a failure to read is not an answer
	}
	s.mu.Lock()
	if s.gen == gen {
		if len(s.states) >= maxStates {
			clear(s.states)
		}
		s.states[key] = tokenState{family: f, err: err, expires: now.Add(tokenStateTTL)}
	}
	s.mu.Unlock()
	return f, err
}

// forget drops every cached answer: revocations are rare, and a dropped
// entry costs one read.
func (s *tokenStateCache) forget() {
	s.mu.Lock()
	s.gen++
	clear(s.states)
	s.mu.Unlock()
}

func (s *tokenStateCache) RevokeRowlessAccessToken(ctx context.Context, id string, expiresAt time.Time) error {
	defer s.forget()
	return s.Store.RevokeRowlessAccessToken(ctx, id, expiresAt)
}

func (s *tokenStateCache) RevokeFamily(ctx context.Context, id string) error {
	defer s.forget()
	return s.Store.RevokeFamily(ctx, id)
}

func (s *tokenStateCache) RevokeRefreshFamily(ctx context.Context, id string) error {
	defer s.forget()
	return s.Store.RevokeRefreshFamily(ctx, id)
}

func (s *tokenStateCache) RevokeGrant(ctx context.Context, grantID string) error {
	defer s.forget()
	return s.Store.RevokeGrant(ctx, grantID)
}

func (s *tokenStateCache) RevokeUserClientTokens(ctx context.Context, subject, clientID string) error {
	defer s.forget()
	return s.Store.RevokeUserClientTokens(ctx, subject, clientID)
}

// EndSessions revokes the tokens issued under the sessions it ends.
func (s *tokenStateCache) EndSessions(ctx context.Context, ends []storage.SessionEnd, msgs []storage.OutboxMessage) error {
	defer s.forget()
	return s.Store.EndSessions(ctx, ends, msgs)
}

// ConsumeAuthCode revokes the grant when the code is replayed.
func (s *tokenStateCache) ConsumeAuthCode(ctx context.Context, codeHash string, now time.Time) (storage.AuthRequest, error) {
	r, err := s.Store.ConsumeAuthCode(ctx, codeHash, now)
	if errors.Is(err, storage.ErrReplayed) {
		s.forget()
	}
	return r, err
}
