//go:build unix

package bench

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// issued is what one completed sign-in got back from the server.
type issued struct {
	user          string // user ID
	access, renew string // access and refresh token
}

// Issue 5: a server killed with SIGKILL during a burst of sign-ins restarts
// with no committed event or token lost and an audit chain that verifies.
// "Committed" is what a client saw: a token response, which the server
// sends only after the sign-in's audit rows and the grant are stored.
//
// The server is a real `keystep serve` child process (keystep, built by
// keystepCommand) on SQLite in a temporary data folder. Unix only: it
// needs SIGKILL.
func TestCrashDuringSignInsLosesNothingCommitted(t *testing.T) {
	const (
		workers   = 8
		killAfter = 40 // completed sign-ins before the kill
	)
	ctx := t.Context()
	data := t.TempDir()

	// The bench's provisioning: its clients (es256 is confidential, with
	// client_secret_basic and refresh tokens) and a user per worker, with
	// cheap password hashes so the burst is many sign-ins, not argon2.
	r := &runner{opts: Options{Workers: workers, Scenarios: []string{"code_sso"}}, stderr: t.Output()}
	st, key := openData(t, data)
	r.store = st
	var err error
	if r.audit, err = storage.NewAuditKey(key); err != nil {
		t.Fatal(err)
	}
	err = r.provision(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	config, err := writeServerConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	c := r.clients["es256"]

	srv := startCrashServer(t, childConfig{data: data, config: config})
	target, err := newTarget(ctx, srv.url, workers)
	if err != nil {
		t.Fatal(err)
	}

	// The burst: every worker signs its user in with a new browser (the
	// HTML login: authorize → password page → POST → callback) and
	// exchanges the code, over and over, until the server dies.
	var (
		mu       sync.Mutex
		got      []issued
		firstErr error
		killed   atomic.Bool
		inFlight atomic.Int64
		wg       sync.WaitGroup
	)
	reached := make(chan struct{})
	burst, stopBurst := context.WithCancel(ctx)
	defer stopBurst()
	for w := range workers {
		u := r.sso[w]
		wg.Go(func() {
			for burst.Err() == nil && !killed.Load() {
				inFlight.Add(1)
				tr, err := signInAndExchange(burst, target, c, u, r.password)
				inFlight.Add(-1)
				mu.Lock()
				switch {
				case err == nil:
					got = append(got, issued{user: u.id, access: tr.AccessToken, renew: tr.RefreshToken})
					if len(got) == killAfter {
						close(reached)
					}
				case !killed.Load() && firstErr == nil:
					firstErr = err // a failure before the kill is a bug
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the burst did not complete its sign-ins in 60 s")
	}
	killed.Store(true)
	busy := inFlight.Load()
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-srv.exited
	stopBurst()
	wg.Wait()
	target.close()
	if firstErr != nil {
		t.Fatalf("a sign-in failed before the kill: %v", firstErr)
	}
	if ws, ok := srv.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the server ended with %v, not SIGKILL", srv.cmd.ProcessState)
	}
	t.Logf("killed the server after %d completed sign-ins, with %d in flight", len(got), busy)

	// Restart on the same folder and address: the issuer is the same, as
	// after a real crash.
	addr := strings.TrimPrefix(srv.url, "http://")
	srv = startCrashServer(t, childConfig{addr: addr, data: data, config: config})
	target, err = newTarget(ctx, srv.url, workers)
	if err != nil {
		t.Fatal(err)
	}
	defer target.close()
	signIns := map[string]int{}
	for _, tok := range got {
		signIns[tok.user]++
		if err := target.introspect(ctx, c, tok.access); err != nil {
			t.Errorf("an access token issued before the crash: %v", err)
		}
	}
	// After introspection: the refresh grant may revoke the access tokens
	// of the grant it rotates.
	for _, tok := range got {
		if _, err := target.refresh(ctx, c, tok.renew); err != nil {
			t.Errorf("a refresh token issued before the crash: %v", err)
		}
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("restarted server: %v", err)
	}

	// The audit chain verifies and holds a login.completed row for every
	// sign-in a client saw complete (more when the kill cut one short
	// after its row was written).
	res := keystep(t, "audit", "verify", "--json", "--data", data)
	if res.code != 0 {
		t.Fatalf("keystep audit verify: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	var verified struct {
		Rows int  `json:"rows"`
		OK   bool `json:"ok"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &verified); err != nil || !verified.OK {
		t.Fatalf("audit verify: %s (%v)", res.stdout, err)
	}
	if verified.Rows < len(got) {
		t.Errorf("the audit log has %d rows for %d completed sign-ins", verified.Rows, len(got))
	}
	st, _ = openData(t, data)
	defer st.Close()
	events, err := st.ListAudit(ctx, storage.AuditFilter{Type: "login.completed", Outcome: "success"})
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]int{}
	for _, e := range events {
		logged[e.UserID]++
	}
	for user, n := range signIns {
		if logged[user] < n {
			t.Errorf("%s: %d login.completed rows for %d completed sign-ins", user, logged[user], n)
		}
	}
}

// openData makes a data folder as keystep's commands do (its master key
// and its SQLite database) and opens it.
func openData(t *testing.T, data string) (storage.Store, []byte) {
	t.Helper()
	if r := keystep(t, "keys", "list", "--data", data); r.code != 0 {
		t.Fatalf("keystep keys list: exit %d\n%s", r.code, r.stderr)
	}
	raw, err := os.ReadFile(filepath.Join(data, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	return st, key
}

// startCrashServer starts `keystep serve` and stops it (if still running)
// when the test ends.
func startCrashServer(t *testing.T, cc childConfig) *childServer {
	t.Helper()
	cc.keystep = keystepCommand(t)
	srv, err := startChild(t.Context(), cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.stop() })
	return srv
}

// signInAndExchange signs u in with a new browser and redeems the code for
// tokens, a refresh token included.
func signInAndExchange(ctx context.Context, t *target, c client, u *user, password string) (tokenResponse, error) {
	code, a, err := t.browser(u.ip).signIn(ctx, c, "openid offline_access", u, password)
	if err != nil {
		return tokenResponse{}, err
	}
	tr, err := t.exchange(ctx, c, code, a)
	if err == nil && tr.RefreshToken == "" {
		err = errors.New("the code exchange returned no refresh token")
	}
	return tr, err
}
