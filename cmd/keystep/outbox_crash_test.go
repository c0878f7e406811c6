//go:build unix

package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// Issue 20: a `keystep serve` killed with SIGKILL while 100 back-channel
// logouts are pending — some delivered, some on the wire, the rest waiting —
// loses none of them: after a restart every one arrives (at least once; the
// receiver drops repeats by jti) and the outbox is empty.
//
// The server is a real child process on SQLite; the receiver answers the
// first deliveries, then holds the next ones open until the kill, so
// messages claimed by the dead process are in flight when it dies. Their
// lease (--outbox-lease) runs out and the restarted server sends them.
func TestOutboxSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keystep")
	}
	const (
		total      = 100
		answered   = 20 // delivered before the kill
		heldToKill = 5  // on the wire when it dies
	)
	ctx := t.Context()
	bin := filepath.Join(t.TempDir(), "keystep")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/keystep/keystep/cmd/keystep").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	var (
		mu      sync.Mutex
		got     = map[string]int{} // jti → deliveries answered 200
		calls   int
		held    int
		killed  bool
		heldNow = make(chan struct{})
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jti, err := logoutJTI(r.PostFormValue("logout_token"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls++
		if !killed && calls > answered {
			held++
			if held == heldToKill {
				close(heldNow)
			}
			mu.Unlock()
			<-r.Context().Done() // the server dies with the request open
			return
		}
		got[jti]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	// The data folder: a client with a backchannel_logout_uri and 100
	// sessions' worth of token families, whose ends queue 100 logouts.
	data := t.TempDir()
	c := common{data: data}
	st, _, err := c.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreateClient(ctx, storage.Client{ID: "rp", Name: "RP", RedirectURIs: []string{"https://rp.example/cb"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, IDTokenAlg: "ES256",
		BackchannelLogoutURI: recv.URL + "/backchannel", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var ends []storage.SessionEnd
	for i := range total {
		sid := fmt.Sprintf("sid-%03d", i)
		g := storage.Grant{GrantID: "g-" + sid, ClientID: "rp", Subject: "u1", Scopes: []string{"openid"}, AuthTime: now, SessionID: sid}
		if err := st.CreateFamily(ctx, storage.Family{ID: "f-" + sid, Grant: g, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, nil); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, storage.SessionEnd{UserID: "u1", SID: sid})
	}
	if err := admin.EndSessions(ctx, st, now, ends...); err != nil {
		t.Fatal(err)
	}
	if ms, err := st.OutboxMessages(ctx, "", storage.OutboxPending, 2*total); err != nil || len(ms) != total {
		t.Fatalf("pending before the start: %d %v", len(ms), err)
	}
	st.Close()

	first := startOutboxServe(t, bin, data)
	select {
	case <-heldNow:
	case <-time.After(2 * time.Minute):
		t.Fatal("the deliveries never reached the receiver")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	mu.Lock()
	killed = true
	before := len(got)
	mu.Unlock()
	if before < answered-1 || before >= total {
		t.Fatalf("%d delivered before the kill, want about %d", before, answered)
	}

	second := startOutboxServe(t, bin, data)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d logouts delivered after the restart", n, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	t.Logf("%d delivered before the kill, %d held open when it died, %d calls in all", before, held, calls)
	mu.Unlock()
	_ = second.Process.Signal(syscall.SIGTERM)
	_ = second.Wait()

	st, _, err = c.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if left, err := st.OutboxMessages(ctx, "", "", total); err != nil || len(left) != 0 {
		t.Fatalf("%d messages left in the outbox (%v)", len(left), err)
	}
}

// logoutJTI reads the jti of a logout token (its signature is the
// conformance tests' business).
func logoutJTI(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("not a JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.JTI == "" {
		return "", fmt.Errorf("no jti: %v", err)
	}
	return c.JTI, nil
}

// startOutboxServe starts `keystep serve` on a free loopback port with a short
// outbox lease (and the extra flags) and waits until it is ready.
func startOutboxServe(t *testing.T, bin, data string, extra ...string) *exec.Cmd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--addr", addr, "--outbox-lease", "6s", "--public-metrics"}, extra...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "KEYSTEP_LOG_LEVEL=error")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for range 300 {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("keystep serve did not start")
	return nil
}
