package idp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// SSRF: a client's backchannel_logout_uri decides where Keystep connects,
// so only https is allowed (http only to a loopback host, for development).
func TestOutboxTargetSchemes(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"https://rp.example/backchannel", true},
		{"http://localhost:8081/backchannel", true},
		{"http://127.0.0.1:8081/backchannel", true},
		{"http://[::1]:8081/backchannel", true},
		{"http://rp.example/backchannel", false},
		{"http://10.0.0.1/backchannel", false},
		{"ftp://rp.example/backchannel", false},
		{"https://user:pass@rp.example/backchannel", false},
		{"/backchannel", false},
		{"https://", false},
	} {
		if err := checkTarget(tc.target); (err == nil) != tc.ok {
			t.Errorf("checkTarget(%q) = %v, want ok %v", tc.target, err, tc.ok)
		}
	}
}

// SSRF: the address is checked where the connection is made, after DNS,
// so a public name resolving to a private address is refused too.
func TestOutboxDialAllowsOnlyPublicAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr                  string
		private, loopback, ok bool
	}{
		{"93.184.215.14:443", false, false, true},
		{"[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443", false, false, true},
		{"10.1.2.3:443", false, false, false},
		{"172.16.0.1:443", false, false, false},
		{"192.168.1.1:443", false, false, false},
		{"100.64.0.1:443", false, false, false},
		{"169.254.169.254:80", false, false, false}, // cloud metadata
		{"[fe80::1]:443", false, false, false},
		{"[fc00::1]:443", false, false, false},
		{"0.0.0.0:443", false, false, false},
		{"224.0.0.1:443", false, false, false},
		{"127.0.0.1:443", false, false, false},
		{"[::1]:443", false, false, false},
		{"[::ffff:10.1.2.3]:443", false, false, false}, // IPv4-mapped
		{"127.0.0.1:443", false, true, true},           // the issuer is loopback: development
		{"10.1.2.3:443", false, true, false},           // ...but nothing else private
		{"10.1.2.3:443", true, false, true},            // --outbox-allow-private
		{"127.0.0.1:443", true, false, true},
	} {
		err := allowedAddress(tc.addr, tc.private, tc.loopback)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, errForbiddenAddress) {
			t.Errorf("allowedAddress(%s, private %v, loopback %v) = %v, want ok %v", tc.addr, tc.private, tc.loopback, err, tc.ok)
		}
	}
}

// The client refuses at dial time: a loopback target with a non-loopback
// issuer never gets the request, and localhost (a name) is resolved first.
func TestOutboxRefusesLoopbackUnlessTheIssuerIsLoopback(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	cfg := OutboxConfig{}.withDefaults()
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, target := range []string{srv.URL, byName} {
		o := &outbox{cfg: cfg, http: deliveryClient(cfg, false)}
		err := o.post(t.Context(), target, url.Values{"logout_token": {"x"}})
		if err == nil || !errors.Is(err, errForbiddenAddress) {
			t.Errorf("%s with a public issuer: %v, want the address refused", target, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver was reached %d times", hits.Load())
	}
	o := &outbox{cfg: cfg, http: deliveryClient(cfg, true)}
	if err := o.post(t.Context(), srv.URL, url.Values{"logout_token": {"x"}}); err != nil || hits.Load() != 1 {
		t.Fatalf("with a loopback issuer: %v (hits %d)", err, hits.Load())
	}
}

// No redirect is followed: a receiver cannot bounce the POST to another
// address, and a redirect is not a delivery.
func TestOutboxFollowsNoRedirect(t *testing.T) {
	var inner atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { inner.Add(1) }))
	defer internal.Close()
	bounce := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL, http.StatusTemporaryRedirect)
	}))
	defer bounce.Close()
	cfg := OutboxConfig{}.withDefaults()
	o := &outbox{cfg: cfg, http: deliveryClient(cfg, true)}
	err := o.post(t.Context(), bounce.URL, url.Values{"logout_token": {"x"}})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("a redirect: %v, want a failure naming 307", err)
	}
	if inner.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

// A receiver that does not answer in time fails the attempt (it is
// retried), rather than holding the worker.
func TestOutboxTimesOut(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	cfg := OutboxConfig{Timeout: 50 * time.Millisecond}.withDefaults()
	o := &outbox{cfg: cfg, http: deliveryClient(cfg, true)}
	if err := o.post(t.Context(), slow.URL, url.Values{"logout_token": {"x"}}); err == nil {
		t.Fatal("a receiver that never answered counted as delivered")
	}
}

// The backoff doubles from MinBackoff up to MaxBackoff, with jitter in its
// upper half.
func TestOutboxBackoff(t *testing.T) {
	o := &outbox{cfg: OutboxConfig{MinBackoff: 10 * time.Second, MaxBackoff: time.Minute}}
	for _, tc := range []struct {
		attempts int
		max      time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {4, time.Minute}, {30, time.Minute}} {
		for range 20 {
			if d := o.backoff(tc.attempts); d < tc.max/2 || d > tc.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.attempts, d, tc.max/2, tc.max)
			}
		}
	}
}

// A lease shorter than an attempt would let a second instance send a
// message the first is still sending: the configuration is refused.
func TestOutboxConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg OutboxConfig
		ok  bool
	}{
		{OutboxConfig{}, true},
		{OutboxConfig{Lease: 6 * time.Second}, true},
		{OutboxConfig{Lease: 5 * time.Second}, false},
		{OutboxConfig{Timeout: 2 * time.Minute}, false},
		{OutboxConfig{MinBackoff: -time.Second}, false},
	} {
		if err := tc.cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("validate(%+v) = %v, want ok %v", tc.cfg, err, tc.ok)
		}
	}
}
