package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage/sqlite"
)

// testPassword passes the password policy; tests pipe it to --password-stdin.
const testPassword = "correct horse battery staple\n"

// result is what one run of the command left behind.
type result struct {
	code           int
	stdout, stderr string
}

// fixClock makes the commands' clock read t from now until the test ends,
// and returns t: fixtures that the commands judge by time use it, never the
// wall clock.
func fixClock(t *testing.T, at time.Time) time.Time {
	t.Helper()
	prev := clock
	clock = func() time.Time { return at }
	t.Cleanup(func() { clock = prev })
	return at
}

// keystep runs the command in-process with stdin as its standard input.
func keystep(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// mustKeystep runs the command and fails the test unless it exits 0.
func mustKeystep(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := keystep(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("keystep %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// wantExit fails the test unless r exited with code and stderr names every
// one of want.
func wantExit(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
}

// noFile fails the test if path exists: bad input must not touch the data folder.
func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s was created", path)
	}
}

// readMasterKey reads DATA/master.key as the server would.
func readMasterKey(t *testing.T, data string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(data, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// startServerCode runs what serve runs before listening (idp.NewServer):
// it creates the signing keys and the built-in account client.
func startServerCode(t *testing.T, data string) {
	t.Helper()
	mustKeystep(t, "", "keys", "list", "--data", data) // creates the master key and database
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = idp.NewServer(t.Context(), idp.Config{
		Issuer: "http://localhost:8080", Store: st, MasterKey: readMasterKey(t, data), Policy: stepup.DefaultPolicy(),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout string
		wantStderr []string
	}{
		{"an unknown command exits 2 and prints the usage", []string{"frobnicate"}, 2, "", []string{`unknown command "frobnicate"`, "Usage:"}},
		{"help exits 0 and prints the usage", []string{"help"}, 0, "Usage:", nil},
		{"--help exits 0 and prints the usage", []string{"--help"}, 0, "Usage:", nil},
		{"serve -h exits 0 and prints the usage", []string{"serve", "-h"}, 0, "Usage:", nil},
		{"users --help exits 0 and prints the usage", []string{"users", "--help"}, 0, "Usage:", nil},
		{"users list -h exits 0 and prints the usage", []string{"users", "list", "-h"}, 0, "Usage:", nil},
		{"users without an action is a usage error", []string{"users"}, 2, "", []string{"want create, list"}},
		{"an unknown users action is a usage error", []string{"users", "frobnicate"}, 2, "", []string{"unknown action frobnicate"}},
		{"an unknown clients action is a usage error", []string{"clients", "frobnicate"}, 2, "", []string{"unknown action frobnicate"}},
		{"an unknown keys action is a usage error", []string{"keys", "frobnicate"}, 2, "", []string{"unknown action frobnicate"}},
		{"an unknown audit action is a usage error", []string{"audit", "frobnicate"}, 2, "", []string{"unknown action frobnicate"}},
		{"an unknown flag is a usage error", []string{"users", "list", "--frobnicate"}, 2, "", []string{"-frobnicate", "Usage:"}},
		{"an unknown serve flag is a usage error", []string{"serve", "--frobnicate"}, 2, "", []string{"-frobnicate", "Usage:"}},
		{"an unknown flag without a command is a serve usage error", []string{"--frobnicate"}, 2, "", []string{"-frobnicate"}},
		{"a stray serve argument is a usage error", []string{"serve", "now"}, 2, "", []string{`unexpected argument "now"`}},
		{"a bad log level is a usage error", []string{"serve", "--log-level", "loud"}, 2, "", []string{"--log-level"}},
		{"a profiler on the network is a usage error", []string{"serve", "--pprof", "0.0.0.0:6060"}, 2, "", []string{"--pprof", "loopback"}},
		{"a profiler without a port is a usage error", []string{"serve", "--pprof", "127.0.0.1"}, 2, "", []string{"--pprof"}},
		{"a stray list argument is a usage error", []string{"users", "list", "alice"}, 2, "", []string{`unexpected argument "alice"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			r := keystep(t, "", append(tt.args, "--data", data)...)
			wantExit(t, r, tt.code, tt.wantStderr...)
			if !strings.Contains(r.stdout, tt.wantStdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.wantStdout, r.stdout)
			}
			noFile(t, filepath.Join(data, "keystep.db"))
		})
	}
}

func TestMasterKey(t *testing.T) {
	hexKey := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		setup   func(t *testing.T, data string) []string // writes files, returns extra args
		code    int
		want    []string // in stderr; DATA is the data folder
		keyFile bool     // DATA/master.key exists afterwards
	}{
		{
			name:    "a new data folder gets a generated key",
			setup:   func(t *testing.T, data string) []string { return nil },
			keyFile: true,
		},
		{
			name: "an explicit key file is used and none is generated",
			setup: func(t *testing.T, data string) []string {
				p := filepath.Join(t.TempDir(), "k")
				os.WriteFile(p, []byte(hexKey+"\n"), 0o600)
				return []string{"--master-key-file", p}
			},
		},
		{
			name: "an explicit key file that does not exist is an error, not generated",
			setup: func(t *testing.T, data string) []string {
				return []string{"--master-key-file", filepath.Join(data, "missing.key")}
			},
			code: 1,
			want: []string{"missing.key"},
		},
		{
			name: "a corrupt key file is an error naming the file",
			setup: func(t *testing.T, data string) []string {
				os.WriteFile(filepath.Join(data, "master.key"), []byte("not a key\n"), 0o600)
				return nil
			},
			code:    1,
			want:    []string{filepath.Join("DATA", "master.key"), "64 hex digits"},
			keyFile: true,
		},
		{
			name: "a key of the wrong length is an error",
			setup: func(t *testing.T, data string) []string {
				os.WriteFile(filepath.Join(data, "master.key"), []byte(hexKey[:60]+"\n"), 0o600)
				return nil
			},
			code:    1,
			want:    []string{"master.key", "want 32 bytes"},
			keyFile: true,
		},
		{
			name: "a key with trailing garbage is an error",
			setup: func(t *testing.T, data string) []string {
				os.WriteFile(filepath.Join(data, "master.key"), []byte(hexKey+"zz\n"), 0o600)
				return nil
			},
			code:    1,
			want:    []string{"master.key"},
			keyFile: true,
		},
		{
			name: "a lost key next to an existing database is not silently replaced",
			setup: func(t *testing.T, data string) []string {
				mustKeystep(t, "", "users", "list", "--data", data)
				os.Remove(filepath.Join(data, "master.key"))
				return nil
			},
			code: 1,
			want: []string{filepath.Join("DATA", "master.key"), "is missing but the database", "keystep.db"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			extra := tt.setup(t, d)
			r := keystep(t, "", append([]string{"users", "list", "--data", d}, extra...)...)
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.ReplaceAll(w, "DATA", d))
			}
			wantExit(t, r, tt.code, want...)
			_, err := os.Stat(filepath.Join(d, "master.key"))
			if got := err == nil; got != tt.keyFile {
				t.Errorf("DATA/master.key exists: %v, want %v", got, tt.keyFile)
			}
		})
	}
}

func TestGeneratedMasterKeyIsPrivateAndStable(t *testing.T) {
	d := t.TempDir()
	mustKeystep(t, "", "users", "list", "--data", d)
	path := filepath.Join(d, "master.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("master.key mode %o, want 600", perm)
	}
	first, _ := os.ReadFile(path)
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(first) {
		t.Errorf("master.key = %q, want 64 lower-case hex digits and a newline", first)
	}
	mustKeystep(t, "", "users", "list", "--data", d)
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Error("the second command replaced the master key")
	}
}

// syncBuffer is a bytes.Buffer the server goroutines and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a `keystep serve` running in the test.
type server struct {
	url            string
	stdout, stderr *syncBuffer
	stop           func() int // cancels the context and returns the exit code
}

var servingRE = regexp.MustCompile(`Keystep is serving (http://\S+)`)

// startServe starts `keystep serve` on a free loopback port and waits until it
// prints its URL.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &server{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), s.stdout, s.stderr)
	}()
	var once sync.Once
	var code int
	s.stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { s.stop() })
	for {
		if m := servingRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			return s
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before serving\nstdout: %s\nstderr: %s", code, s.stdout, s.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *server) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return body
}

// kids are the key IDs the server publishes.
func (s *server) kids(t *testing.T) []string {
	t.Helper()
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(s.get(t, "/.well-known/openid-configuration"), &disc); err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(s.get(t, strings.TrimPrefix(disc.JWKSURI, s.url)), &jwks); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range jwks.Keys {
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return kids
}

func TestServeFirstStartThenRestartKeepsState(t *testing.T) {
	d := t.TempDir()

	first := startServe(t, "--data", d, "--public-metrics")
	if got := string(first.get(t, "/healthz")); !strings.HasPrefix(got, "ok") {
		t.Errorf("/healthz = %q", got)
	}
	first.get(t, "/readyz")
	var disc struct {
		Issuer string   `json:"issuer"`
		ACRs   []string `json:"acr_values_supported"`
	}
	if err := json.Unmarshal(first.get(t, "/.well-known/openid-configuration"), &disc); err != nil {
		t.Fatal(err)
	}
	if disc.Issuer != first.url {
		t.Errorf("issuer %q, want the URL it serves on, %q", disc.Issuer, first.url)
	}
	for _, acr := range []string{stepup.ACRSingleFactor, stepup.ACRMultiFactor, stepup.ACRPhishing, stepup.ACRHardware} {
		if !slices.Contains(disc.ACRs, acr) {
			t.Errorf("acr_values_supported %v lacks %q", disc.ACRs, acr)
		}
	}
	if !strings.Contains(first.stdout.String(), first.url+"/setup?token=") {
		t.Errorf("first start printed no setup link:\n%s", first.stdout)
	}
	kids := first.kids(t)
	if len(kids) != 3 {
		t.Errorf("JWKS has %d keys, want one per algorithm", len(kids))
	}
	if code := first.stop(); code != 0 {
		t.Fatalf("serve exited %d after cancel, want 0 (graceful shutdown)\nstderr: %s", code, first.stderr)
	}

	mustKeystep(t, testPassword, "users", "create", "--username", "alice", "--password-stdin", "--data", d)

	second := startServe(t, "--data", d)
	if strings.Contains(second.stdout.String(), "/setup?token=") {
		t.Errorf("second start printed a setup link although a user exists:\n%s", second.stdout)
	}
	if got := second.kids(t); !slices.Equal(got, kids) {
		t.Errorf("signing keys after restart %v, want the same as before %v", got, kids)
	}
	if code := second.stop(); code != 0 {
		t.Fatalf("serve exited %d after cancel, want 0", code)
	}
	if r := mustKeystep(t, "", "users", "list", "--data", d); !strings.Contains(r.stdout, "alice") {
		t.Errorf("users list after restart lacks alice:\n%s", r.stdout)
	}
}

func TestServeRefuses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args func(t *testing.T, data string) []string
		want []string
	}{
		{
			name: "a config file with problems exits 1 without serving",
			args: func(t *testing.T, data string) []string {
				p := filepath.Join(t.TempDir(), "bad.json")
				os.WriteFile(p, []byte(`{"scope_min_acr": {"payroll": "gold"}, "trusted_proxies": ["10.0.0.0/33"]}`), 0o600)
				return []string{"--config", p, "--addr", "127.0.0.1:0"}
			},
			want: []string{"bad.json", `unknown acr "gold"`, "trusted_proxies[0]"},
		},
		{
			name: "a missing config file exits 1 without serving",
			args: func(t *testing.T, data string) []string {
				return []string{"--config", filepath.Join(data, "none.json"), "--addr", "127.0.0.1:0"}
			},
			want: []string{"none.json"},
		},
		{
			name: "a port in use exits 1 without claiming to serve",
			args: func(t *testing.T, data string) []string {
				return []string{"--addr", busy.Addr().String()}
			},
			want: []string{"listen", busy.Addr().String()},
		},
		{
			name: "a plain-http issuer for a public host exits 1",
			args: func(t *testing.T, data string) []string {
				return []string{"--addr", "127.0.0.1:0", "--issuer", "http://id.example.com"}
			},
			want: []string{"http is only allowed for localhost"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			r := keystep(t, "", append([]string{"serve", "--data", d}, tt.args(t, d)...)...)
			wantExit(t, r, 1, tt.want...)
			if strings.Contains(r.stdout, "serving") {
				t.Errorf("stdout claims to serve:\n%s", r.stdout)
			}
		})
	}
}

func TestServeWithABadConfigLeavesTheDataFolderAlone(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(p, []byte(`{"levelz": []}`), 0o600)
	wantExit(t, keystep(t, "", "serve", "--data", d, "--config", p, "--addr", "127.0.0.1:0"), 1, `unknown field "levelz"`)
	noFile(t, filepath.Join(d, "keystep.db"))
	noFile(t, filepath.Join(d, "master.key"))
}

// --pprof serves Go's profiler on its own loopback listener, never on the
// main one.
func TestServeProfiler(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := startServe(t, "--data", t.TempDir(), "--pprof", addr)
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("profiler: %s", resp.Status)
	}
	resp, err = http.Get(s.url + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the main listener serves the profiler")
	}
}
