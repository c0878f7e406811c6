package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

type explainJSON struct {
	Score   int    `json:"risk_score"`
	Band    string `json:"risk_band"`
	Outcome string `json:"outcome"`
	Signals []struct {
		Name string `json:"name"`
	} `json:"signals"`
	Next   []string `json:"next_factors"`
	Error  string   `json:"error"`
	Waived bool     `json:"risk_waived"`
}

func explainRun(t *testing.T, data string, args ...string) explainJSON {
	t.Helper()
	r := mustKeystep(t, "", append([]string{"explain", "--json", "--data", data}, args...)...)
	var x explainJSON
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, r.stdout)
	}
	return x
}

func TestExplain(t *testing.T) {
	data := t.TempDir()
	u := createUser(t, data, "alice")
	createClient(t, data, "--id", "payroll", "--redirect-uri", "https://payroll.example/cb")

	t.Run("a first sign-in is quiet", func(t *testing.T) {
		x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.10", "--device", "new")
		if x.Band != "low" || x.Outcome != "satisfied" || len(x.Signals) != 1 || x.Signals[0].Name != "first_sign_in" {
			t.Fatalf("%+v", x)
		}
	})

	// Give alice a history at home and an authenticator app.
	withStore(t, data, func(st storage.Store) {
		now := fixClock(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) // explain weighs the history against its clock
		if err := st.RecordSignIn(t.Context(), storage.SignIn{UserID: u.ID, At: now, IP: "192.0.2.10", Network: "192.0.2.0/24", DeviceID: "home"}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateFactor(t.Context(), storage.Factor{ID: "f1", UserID: u.ID, Kind: "totp", Name: "Phone", Secret: []byte("sealed"), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("home is quiet", func(t *testing.T) {
		x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.99", "--device", "known")
		if x.Band != "low" || x.Outcome != "satisfied" {
			t.Fatalf("%+v", x)
		}
	})
	t.Run("a new device on a new network asks for the authenticator app", func(t *testing.T) {
		x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "203.0.113.5", "--device", "new")
		if x.Band != "medium" || x.Outcome != "need_factor" {
			t.Fatalf("%+v", x)
		}
		if len(x.Next) == 0 || x.Next[0] != "totp" {
			t.Fatalf("next %v", x.Next)
		}
	})
	t.Run("an app asking for phr the user cannot reach gets the true level", func(t *testing.T) {
		x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.99", "--acr", "phr")
		if x.Outcome != "satisfied" {
			t.Fatalf("%+v", x)
		}
	})
	t.Run("the human output says why", func(t *testing.T) {
		r := mustKeystep(t, "", "explain", "--data", data, "--user", "alice", "--client", "payroll", "--ip", "203.0.113.5", "--device", "new")
		for _, want := range []string{"risk: medium", "new_device", "new_network", "Use your authenticator app"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("bad input is a usage error", func(t *testing.T) {
		r := keystep(t, "", "explain", "--data", data, "--user", "alice", "--ip", "not-an-ip")
		if r.code != 2 || !strings.Contains(r.stderr, "--client is required") || !strings.Contains(r.stderr, "not an IP") {
			t.Fatalf("%d %s", r.code, r.stderr)
		}
	})
}
