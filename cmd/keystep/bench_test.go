package main

import (
	"strings"
	"testing"
)

func TestBenchCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; "" for none
	}{
		{"the defaults are valid", nil, ""},
		{"a remote URL is refused", []string{"--url", "http://id.example.com", "--data", "x"}, "not a loopback address"},
		{"a remote IP is refused", []string{"--url", "http://192.0.2.1:8080", "--data", "x"}, "not a loopback address"},
		{"a remote URL may be allowed", []string{"--url", "https://id.example.com", "--data", "x", "--allow-remote"}, ""},
		{"localhost and ::1 are loopback", []string{"--url", "http://[::1]:8080", "--scenario", "jwks"}, ""},
		{"a URL with a path is refused", []string{"--url", "http://127.0.0.1:8080/oauth", "--data", "x"}, "without a path"},
		{"provisioning needs the data folder", []string{"--url", "http://localhost:8080"}, "--url needs --data"},
		{"--data alone is refused", []string{"--data", "x"}, "only for --url"},
		{"unknown scenarios are named", []string{"--scenario", "jwks,nope"}, `unknown scenario "nope"`},
		{"no duration and no count", []string{"--duration", "0"}, "--duration 0s"},
		{"no workers", []string{"--workers", "0"}, "--workers 0"},
		{"a loopback database is accepted", []string{"--database", "postgres://bench@127.0.0.1:5432/bench?sslmode=disable"}, ""},
		{"a database on a Unix socket is local", []string{"--database", "postgres:///bench?host=/var/run/postgresql"}, ""},
		{"a remote database is refused", []string{"--database", "postgres://bench@db.example.com/bench"}, `"db.example.com" is not a loopback address`},
		{"every host of a multi-host URL is checked", []string{"--database", "postgres://bench@127.0.0.1:5432,192.0.2.7:5432/bench"}, `"192.0.2.7" is not a loopback address`},
		{"a remote database may be allowed", []string{"--database", "postgres://bench@db.example.com/bench", "--allow-remote"}, ""},
		{"only PostgreSQL is a --database", []string{"--database", "mysql://127.0.0.1/bench"}, "want a postgres:// URL"},
		{"a --database with --url needs its data folder", []string{"--url", "http://127.0.0.1:8080", "--scenario", "jwks", "--database", "postgres://127.0.0.1/bench"}, "needs --data too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseBench(tc.args)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("parseBench(%q) = %v", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("parseBench(%q) = %v, want an error about %q", tc.args, err, tc.want)
			}
		})
	}
}
