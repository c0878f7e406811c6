package idp

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/keystep/keystep/login/web"
)

// RateLimit caps requests per client address on the protocol endpoints
// (DESIGN §6): bursts over the rate get 429 with Retry-After (RFC 6585 §4)
// and the server stays responsive. Sign-in guesses have their own,
// storage-backed limits (throttle.Limits); this is the cheap in-memory front
// line against floods.
type RateLimit struct {
	// PerSecond is the sustained rate per address; 0 turns the limit off.
	PerSecond float64
	// Burst is how many requests an address may make at once.
	Burst int
}

// DefaultRateLimits: token-style endpoints serve machines (refresh storms
// are normal); /authorize serves people.
var DefaultRateLimits = map[string]RateLimit{
	"token":     {PerSecond: 200, Burst: 400},
	"authorize": {PerSecond: 20, Burst: 60},
}

// rateGroup maps a path to its limit group, or "" for none.
func rateGroup(path string) string {
	switch path {
	case "/oauth/token", "/oauth/introspect", "/revoke":
		return "token"
	case "/authorize":
		return "authorize"
	}
	return ""
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiter is a token bucket per (group, address).
type limiter struct {
	limits map[string]RateLimit
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

func newLimiter(limits map[string]RateLimit, now func() time.Time) *limiter {
	return &limiter{limits: limits, now: now, buckets: map[string]*bucket{}}
}

// maxBuckets bounds memory under a flood from many addresses: full, idle
// buckets are dropped first (they carry no state worth keeping).
const maxBuckets = 100_000

// allow spends a token for key in group, or says how long to wait.
func (l *limiter) allow(group, addr string) (bool, time.Duration) {
	lim, ok := l.limits[group]
	if !ok || lim.PerSecond <= 0 {
		return true, 0
	}
	now := l.now()
	key := group + "\x00" + addr
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: float64(lim.Burst), last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(float64(lim.Burst), b.tokens+elapsed*lim.PerSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / lim.PerSecond * float64(time.Second))
	return false, wait
}

// prune drops buckets that have refilled completely.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		group, _, _ := cutNul(k)
		lim := l.limits[group]
		if b.tokens+now.Sub(b.last).Seconds()*lim.PerSecond >= float64(lim.Burst) {
			delete(l.buckets, k)
		}
	}
}

func cutNul(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// middleware answers 429 with Retry-After for requests over the limit.
func (l *limiter) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		group := rateGroup(r.URL.Path)
		if group == "" {
			next.ServeHTTP(w, r)
			return
		}
		ok, wait := l.allow(group, web.Info(r.Context()).IP)
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		secs := int(math.Ceil(wait.Seconds()))
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		if group == "authorize" {
			http.Error(w, "Too many requests. Wait a moment and try again.", http.StatusTooManyRequests)
			return
		}
		writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many requests; retry after "+strconv.Itoa(secs)+" s")
	})
}
