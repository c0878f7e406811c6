package idp

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// A resource server introspects, or calls userinfo with, the same access
// token on every request it serves until the token expires, and checking
// its ECDSA signature was a third of each such request's CPU (issue 9). So
// a token whose signature checked out is not checked again for
// verifiedTTL: the same as the keyring's own cache, so a retired key stops
// verifying no later than it did before. Only the signature is remembered —
// expiry, revocation and the token's row are checked on every request — and
// only for a token exactly as presented: the key set sees a parsed token,
// whose serialisation normalises the header, so the cache is used only when
// that serialisation is byte for byte the token in the request (reqState's
// bearer). Keystep's own tokens are; a re-encoded header never is.
const (
	verifiedTTL = 30 * time.Second
	maxVerified = 4096 // then the cache starts over
)

type verifiedCache struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[[sha256.Size]byte]verified
}

type verified struct {
	payload []byte
	until   time.Time
}

func newVerifiedCache(now func() time.Time) *verifiedCache {
	return &verifiedCache{now: now, m: map[[sha256.Size]byte]verified{}}
}

// option wraps the access-token verifier's key set with the cache.
func (c *verifiedCache) option() op.AccessTokenVerifierOpt {
	return func(v *op.AccessTokenVerifier) { v.KeySet = cachedKeySet{next: v.KeySet, cache: c} }
}

type cachedKeySet struct {
	next  oidc.KeySet
	cache *verifiedCache
}

func (k cachedKeySet) VerifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	bearer := stateFrom(ctx).bearer
	if len(bearer) == 0 {
		return k.next.VerifySignature(ctx, jws)
	}
	token, err := jws.CompactSerialize()
	if err != nil || !slices.Contains(bearer, token) {
		return k.next.VerifySignature(ctx, jws)
	}
	key := sha256.Sum256([]byte(token))
	now := k.cache.now()
	k.cache.mu.Lock()
	e, ok := k.cache.m[key]
	k.cache.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.payload, nil
	}
	payload, err := k.next.VerifySignature(ctx, jws)
	if err != nil {
		return nil, err
	}
	k.cache.mu.Lock()
	if len(k.cache.m) >= maxVerified {
		clear(k.cache.m)
	}
	k.cache.m[key] = verified{payload: payload, until: now.Add(verifiedTTL)}
	k.cache.mu.Unlock()
	return payload, nil
}
