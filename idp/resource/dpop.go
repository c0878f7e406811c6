package resource

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/idp/dpop"
)

// DPoP-bound access tokens (RFC 9449 §7). A token whose claims (or
// introspection response) carry cnf.jkt is bound to a key: it is accepted
// only with the DPoP scheme,
//
//	Authorization: DPoP <token>
//	DPoP: <proof>
//
// and a proof for this request (htm, htu, iat, ath of the token, a jti not
// seen before) signed by that key. A bound token sent as Bearer is refused,
// and so is an unbound token sent as DPoP. [WithDPoPRequired] refuses
// bearer tokens altogether.

// ReplayCache remembers the jti of the DPoP proofs a resource server has
// accepted (RFC 9449 §11.1). The default is in memory and bounded
// ([NewMemoryReplayCache]); several instances of an API share one through
// their own implementation (a database table, Redis SET NX).
type ReplayCache interface {
	// Spend records key until expires and reports whether it was new: a
	// key recorded before and not yet expired reports false. It must be
	// atomic: of two concurrent calls with one key, one reports true.
	Spend(ctx context.Context, key string, expires time.Time) (bool, error)
}

// WithDPoPRequired refuses bearer tokens: every request needs a
// DPoP-bound token and its proof, and challenges name the DPoP scheme.
func WithDPoPRequired() Option { return func(v *Verifier) { v.dpopRequired = true } }

// WithPublicURL sets the URL the API is reached at from outside, scheme
// and host and any path prefix ("https://api.example.com"), that DPoP
// proofs name in htu with the request's path. DPoP needs it: without it a
// DPoP request is refused with a server error. It is never taken from the
// request, whose Host header the sender chooses: a proof captured at one
// API would be accepted by another (RFC 9449 §11.1).
func WithPublicURL(base string) Option {
	return func(v *Verifier) { v.publicURL = strings.TrimSuffix(base, "/") }
}

// WithReplayCache sets where spent DPoP proof jtis are remembered.
func WithReplayCache(c ReplayCache) Option { return func(v *Verifier) { v.replay = c } }

// WithDPoPNonces requires DPoP proofs to carry a nonce made by n (RFC 9449
// §9); a request without a current one gets 401 error="use_dpop_nonce"
// and a fresh nonce in the DPoP-Nonce header.
func WithDPoPNonces(n *dpop.Nonces) Option { return func(v *Verifier) { v.nonces = n } }

// credentials are the access token of a request and how it came.
type credentials struct {
	token string
	dpop  bool // the DPoP scheme, not Bearer
}

// requestCredentials reads an Authorization: Bearer or DPoP header (RFC
// 6750 §2.1, RFC 9449 §7.1; schemes are case-insensitive, RFC 7235 §2.1).
// Tokens in the query or body are not accepted.
func requestCredentials(r *http.Request) (credentials, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimLeft(token, " ")
	switch {
	case !ok:
		return credentials{}, false
	case strings.EqualFold(scheme, "Bearer"):
		return credentials{token: token}, true
	case strings.EqualFold(scheme, dpop.Scheme):
		return credentials{token: token, dpop: true}, true
	}
	return credentials{}, false
}

// errDPoP is a refusal of the DPoP part of a request, answered with a DPoP
// challenge carrying code.
type errDPoP struct {
	code, desc string
}

func (e *errDPoP) Error() string { return "resource: " + e.code + ": " + e.desc }

// checkBinding checks that a token with claims c may be used the way cr
// presented it in r (RFC 9449 §7.1): a proof of c.JKT's key for this
// request when the token is bound or came with the DPoP scheme; nothing
// more for an unbound bearer token, unless DPoP is required.
func (v *Verifier) checkBinding(ctx context.Context, r *http.Request, cr credentials, c Claims) error {
	switch {
	case !cr.dpop && c.JKT != "":
		return &errDPoP{code: errInvalidToken, desc: "The access token is DPoP-bound and needs the DPoP scheme"}
	case !cr.dpop && v.dpopRequired:
		return &errDPoP{code: errInvalidToken, desc: "This API accepts DPoP-bound tokens only"}
	case !cr.dpop:
		return nil
	case c.JKT == "":
		return &errDPoP{code: errInvalidToken, desc: "The access token is not DPoP-bound"}
	}
	if v.publicURL == "" {
		return errNoPublicURL
	}
	vals := r.Header.Values(dpop.HeaderProof)
	if len(vals) != 1 {
		return &errDPoP{code: dpop.CodeInvalidProof, desc: "One DPoP proof is required"}
	}
	now := v.now()
	p, err := dpop.Verify(vals[0], dpop.Check{Method: r.Method, URL: v.requestURL(r), AccessToken: cr.token, Now: now, Nonces: v.nonces})
	if err != nil {
		if !errors.Is(err, dpop.ErrInvalidProof) && !errors.Is(err, dpop.ErrUseNonce) {
			return err
		}
		v.log.DebugContext(ctx, "DPoP proof rejected", "error", err)
		return &errDPoP{code: dpop.Code(err), desc: "The DPoP proof is invalid"}
	}
	if p.JKT != c.JKT {
		return &errDPoP{code: errInvalidToken, desc: "The DPoP proof is not signed by the key the access token is bound to"}
	}
	fresh, err := v.replay.Spend(ctx, p.JKT+"\x00"+p.JTI, now.Add(2*dpop.Window))
	if err != nil {
		return err
	}
	if !fresh {
		return &errDPoP{code: dpop.CodeInvalidProof, desc: "The DPoP proof was already used"}
	}
	return nil
}

// errNoPublicURL refuses a DPoP request to a Verifier opened without
// WithPublicURL: a misconfiguration, answered as a server error.
var errNoPublicURL = errors.New("resource: DPoP needs WithPublicURL: the API's public URL cannot be taken from the request")

// requestURL is the htu a proof for r must name.
func (v *Verifier) requestURL(r *http.Request) string {
	return v.publicURL + r.URL.EscapedPath()
}

// memoryReplayCache is the default ReplayCache. Keys are "holder\x00jti"
// (the proof key's thumbprint, then the jti): when it is full, the holder
// with the most entries loses its oldest one, so one key flooding the cache
// with its own proofs weakens only the protection of its own old proofs,
// never another holder's.
type memoryReplayCache struct {
	now func() time.Time
	max int

	mu     sync.Mutex
	seen   map[string]time.Time
	counts map[string]int // entries per holder
	queue  []replayEntry  // in the order spent: expiries ascend with it
	head   int
}

type replayEntry struct {
	key string
	exp time.Time
}

// DefaultReplayCacheSize is the capacity of the default replay cache.
const DefaultReplayCacheSize = 100_000

// NewMemoryReplayCache returns a ReplayCache in memory that holds at most
// max keys (0 means DefaultReplayCacheSize). Expired keys are dropped as
// time passes; when it is full of unexpired keys, the oldest key of the
// holder (proof key) with the most is forgotten. Several instances of an
// API need a shared cache instead ([WithReplayCache]).
func NewMemoryReplayCache(now func() time.Time, max int) ReplayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &memoryReplayCache{now: now, max: max, seen: map[string]time.Time{}, counts: map[string]int{}}
}

func holderOf(key string) string {
	h, _, _ := strings.Cut(key, "\x00")
	return h
}

func (m *memoryReplayCache) Spend(_ context.Context, key string, expires time.Time) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.seen[key]; ok && now.Before(exp) {
		return false, nil
	}
	m.expire(now)
	if len(m.seen) >= m.max {
		m.evictHeaviest()
	}
	if _, ok := m.seen[key]; !ok {
		m.counts[holderOf(key)]++
	}
	m.seen[key] = expires
	m.queue = append(m.queue, replayEntry{key, expires})
	return true, nil
}

// forget drops key if it is still recorded with exp.
func (m *memoryReplayCache) forget(e replayEntry) {
	if exp, ok := m.seen[e.key]; ok && exp.Equal(e.exp) {
		delete(m.seen, e.key)
		h := holderOf(e.key)
		if m.counts[h]--; m.counts[h] <= 0 {
			delete(m.counts, h)
		}
	}
}

// expire drops the keys expired at now, oldest first, and compacts the queue.
func (m *memoryReplayCache) expire(now time.Time) {
	for m.head < len(m.queue) && !now.Before(m.queue[m.head].exp) {
		m.forget(m.queue[m.head])
		m.queue[m.head] = replayEntry{}
		m.head++
	}
	if m.head > len(m.queue)/2 {
		m.queue = append(m.queue[:0], m.queue[m.head:]...)
		m.head = 0
	}
}

// evictHeaviest forgets the oldest key of the holder with the most keys.
func (m *memoryReplayCache) evictHeaviest() {
	heaviest, n := "", 0
	for h, c := range m.counts {
		if c > n {
			heaviest, n = h, c
		}
	}
	for i := m.head; i < len(m.queue); i++ {
		e := m.queue[i]
		if exp, ok := m.seen[e.key]; ok && exp.Equal(e.exp) && holderOf(e.key) == heaviest {
			m.forget(e)
			return
		}
	}
}
