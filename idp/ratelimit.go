package idp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/idp/adminapi"
	"github.com/keystep/keystep/login/throttle"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// RateLimit caps requests on the protocol endpoints (DESIGN §6): bursts
// over the rate get 429 with Retry-After (RFC 6585 §4) and the server stays
// responsive. Sign-in guesses have their own, storage-backed limits
// (throttle.Limits); these are the cheap in-memory front line.
type RateLimit struct {
	// PerSecond is the sustained rate; 0 turns the limit off.
	PerSecond float64
	// Burst is how many requests may come at once.
	Burst int
}

// DefaultRateLimits by group. "token" (the token, introspection,
// revocation and PAR endpoints) and "authorize" are per client address; "client"
// is per authenticated client, for a client without a rate limit of its
// own (storage.Client.RateLimit).
//
// A busy app's backend calls the token endpoint from one address, so an
// address is charged only for the requests that do not authenticate a
// confidential client, or fail: floods, guessed secrets, public clients
// (each browser has its address). Requests a client authenticates and
// that succeed are charged to the client (issue 17). A group missing from
// the map is off.
var DefaultRateLimits = map[string]RateLimit{
	"token":     {PerSecond: 200, Burst: 400},
	"authorize": {PerSecond: 20, Burst: 60},
	"client":    {PerSecond: 1000, Burst: 2000},
}

// rateGroup maps a path to its limit group, or "" for none.
func rateGroup(path string) string {
	switch path {
	case "/oauth/token", "/oauth/introspect", "/revoke", parPath,
		// Shared Signals: client secrets checked, SETs verified and audited.
		ssfStreamPath, ssfStatusPath, ssfVerifyPath, ssfPollPath, ssfReceivePath:
		return "token"
	case "/authorize":
		return "authorize"
	}
	if path == adminapi.Prefix || strings.HasPrefix(path, adminapi.Prefix+"/") {
		// The admin API: tokens verified, changes audited.
		return "token"
	}
	return ""
}

// clientLimit is the limit of a client's own bucket: its RateLimit with a
// burst of two seconds' worth, else the "client" group's.
func clientLimit(c storage.Client, def RateLimit) RateLimit {
	if c.RateLimit > 0 {
		return RateLimit{PerSecond: float64(c.RateLimit), Burst: 2 * c.RateLimit}
	}
	return def
}

type bucket struct {
	tokens float64
	last   time.Time
	lim    RateLimit
}

// limiter is a token bucket per (group, address) and per client.
type limiter struct {
	limits map[string]RateLimit
	now    func() time.Time
	// client reads a client (through the client cache); nil turns the
	// per-client limits off.
	client func(ctx context.Context, id string) (storage.Client, error)

	mu      sync.Mutex
	buckets map[string]*bucket
}

func newLimiter(limits map[string]RateLimit, now func() time.Time, client func(context.Context, string) (storage.Client, error)) *limiter {
	return &limiter{limits: limits, now: now, client: client, buckets: map[string]*bucket{}}
}

// maxBuckets bounds memory under a flood from many addresses: full, idle
// buckets are dropped first (they carry no state worth keeping).
const maxBuckets = 100_000

// fill returns key's bucket, refilled up to now. l.mu is held.
func (l *limiter) fill(key string, lim RateLimit, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: float64(lim.Burst), last: now}
		l.buckets[key] = b
	}
	b.lim = lim // a client's limit may have changed
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(lim.Burst), b.tokens+elapsed*lim.PerSecond)
		b.last = now
	}
	return b
}

// take spends a token of key's bucket if it has one (spend), or only
// looks (!spend); when there is none it says how long to wait.
func (l *limiter) take(key string, lim RateLimit, spend bool) (bool, time.Duration) {
	if lim.PerSecond <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(key, lim, l.now())
	if b.tokens >= 1 {
		if spend {
			b.tokens--
		}
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / lim.PerSecond * float64(time.Second))
}

// add puts n tokens back into key's bucket (n < 0 spends them, even into
// debt, which later requests then wait out).
func (l *limiter) add(key string, lim RateLimit, n float64) {
	if lim.PerSecond <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.fill(key, lim, l.now())
	b.tokens = math.Min(float64(lim.Burst), b.tokens+n)
}

// prune drops buckets that have refilled completely.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.lim.PerSecond >= float64(b.lim.Burst) {
			delete(l.buckets, k)
		}
	}
}

// middleware answers 429 with Retry-After for requests over the limit.
func (l *limiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		group := rateGroup(r.URL.Path)
		if group == "" {
			next.ServeHTTP(w, r)
			return
		}
		// An IPv6 address counts by its /64 (throttle.Addr), as sign-in
		// guesses do: one host rotating its interface identifier must not
		// get a fresh bucket per request.
		addr, addrLim := group+"\x00"+throttle.Addr(web.Info(r.Context()).IP), l.limits[group]
		if ok, wait := l.take(addr, addrLim, true); !ok {
			tooMany(w, group, wait)
			return
		}
		if group != "token" {
			next.ServeHTTP(w, r)
			return
		}
		id, lim, ok := l.confidential(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		key := "client\x00" + id
		// Only looked at: a request that does not authenticate as the
		// client must not spend its tokens (anyone can name a client).
		if ok, wait := l.take(key, lim, false); !ok {
			l.add(addr, addrLim, 1) // the client's excess is not its address's
			tooMany(w, group, wait)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status != 0 && rec.status < 400 {
			// Authenticated and served: the client's request, not its
			// address's.
			l.add(addr, addrLim, 1)
			l.add(key, lim, -1)
		}
	})
}

// confidential reports the confidential client a token-group request names
// and that client's limit; not ok for none, a public or unknown client, or
// a request naming two. Nothing is verified here: the handler authenticates
// the client, and only a request it served counts as the client's.
func (l *limiter) confidential(r *http.Request) (string, RateLimit, bool) {
	if l.client == nil {
		return "", RateLimit{}, false
	}
	id := claimedClient(r)
	if id == "" {
		return "", RateLimit{}, false
	}
	c, err := l.client(r.Context(), id)
	if err != nil || c.Public || c.AuthMethod == "none" {
		return "", RateLimit{}, false
	}
	return id, clientLimit(c, l.limits["client"]), true
}

// claimedClient is the client a request names in any of the places
// zitadel/oidc reads (op.ClientIDFromRequest and the grant parsers): the
// client_assertion's issuer (RFC 7523 §3), the Basic user (RFC 6749
// §2.3.1) and client_id. A request naming two different clients names
// none, so it is charged to its address whichever the handler believes.
func claimedClient(r *http.Request) string {
	var ids []string
	if u, _, ok := r.BasicAuth(); ok {
		u, err := url.QueryUnescape(u)
		if err != nil {
			return ""
		}
		ids = append(ids, u)
	}
	form := peekForm(r)
	if id := form.Get("client_id"); id != "" {
		ids = append(ids, id)
	}
	if a := form.Get("client_assertion"); a != "" {
		ids = append(ids, assertionIssuer(a))
	}
	if len(ids) == 0 || ids[0] == "" {
		return ""
	}
	for _, id := range ids[1:] {
		if id != ids[0] {
			return ""
		}
	}
	return ids[0]
}

// peekForm parses a form body and puts the body back as it came (an error
// reading it included), so the handler reads and checks exactly what was
// sent. The body is already bounded (limitBody).
func peekForm(r *http.Request) url.Values {
	if r.Method != http.MethodPost || r.Body == nil {
		return nil
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		return nil
	}
	b, err := io.ReadAll(r.Body)
	var rest io.Reader = bytes.NewReader(b)
	if err != nil {
		rest = io.MultiReader(rest, errReader{err})
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{rest, r.Body}
	if err != nil {
		return nil
	}
	v, err := url.ParseQuery(string(b))
	if err != nil {
		return nil
	}
	return v
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// assertionIssuer is the iss claim of a JWT, unverified; "" if unreadable.
func assertionIssuer(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &claims) != nil {
		return ""
	}
	return claims.Iss
}

// tooMany answers 429 with Retry-After (RFC 6585 §4): on the token group
// in the OAuth error shape (RFC 6749 §5.2), on /authorize as a page.
func tooMany(w http.ResponseWriter, group string, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	if group == "authorize" {
		http.Error(w, "Too many requests. Wait a moment and try again.", http.StatusTooManyRequests)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many requests; retry after "+strconv.Itoa(secs)+" s")
}
