package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"tx1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func TestSSFReceiversAddListDelete(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "tx.jwks")
	if err := os.WriteFile(f, []byte(testJWKS), 0o600); err != nil {
		t.Fatal(err)
	}
	r := keystep(t, "", "ssf", "receivers", "add", "--issuer", "https://edr.example", "--jwks-file", f, "--audience", "https://id.example", "--data", d)
	wantExit(t, r, 0)
	r = keystep(t, "", "ssf", "receivers", "add", "--issuer", "https://idp.example", "--jwks-uri", "https://idp.example/jwks", "--audience", "https://id.example", "--data", d)
	wantExit(t, r, 0)
	// Refused, and nothing stored: no keys, both kinds, plain http, a private key, a repeat.
	for _, bad := range [][]string{
		{"--issuer", "https://a.example", "--audience", "x"},
		{"--issuer", "https://a.example", "--jwks-uri", "https://a.example/k", "--jwks-file", f, "--audience", "x"},
		{"--issuer", "http://a.example", "--jwks-uri", "https://a.example/k", "--audience", "x"},
		{"--issuer", "https://a.example", "--jwks-uri", "https://a.example/k"},
		{"--issuer", "https://edr.example", "--jwks-uri", "https://a.example/k", "--audience", "x"},
	} {
		r := keystep(t, "", append([]string{"ssf", "receivers", "add", "--data", d}, bad...)...)
		if r.code == 0 {
			t.Errorf("%v was accepted", bad)
		}
	}
	r = keystep(t, "", "ssf", "receivers", "list", "--data", d)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "https://edr.example") || !strings.Contains(r.stdout, "(JWKS stored)") || !strings.Contains(r.stdout, "https://idp.example/jwks") || strings.Contains(r.stdout, "a.example") {
		t.Errorf("list:\n%s", r.stdout)
	}
	wantExit(t, keystep(t, "", "ssf", "receivers", "delete", "https://idp.example", "--data", d), 0)
	wantExit(t, keystep(t, "", "ssf", "receivers", "delete", "https://idp.example", "--data", d), 1)
	withStore(t, d, func(st storage.Store) {
		rs, err := st.ListReceivers(t.Context())
		if err != nil || len(rs) != 1 || rs[0].Issuer != "https://edr.example" || rs[0].JWKS != testJWKS {
			t.Errorf("stored: %+v %v", rs, err)
		}
	})
	log := auditLog(t, d)
	if !hasEvent(log, storage.EventAdminSSFReceiverAdded, "", "") || !hasEvent(log, storage.EventAdminSSFReceiverDeleted, "", "") {
		t.Error("not audited")
	}
}

// keystep explain shows when a received signal raised the bar: the risk
// floor a transmitter set (a device no longer compliant) asks for the
// authenticator app from home, until it runs out.
func TestExplainShowsAReceivedSignal(t *testing.T) {
	data := t.TempDir()
	u := createUser(t, data, "alice")
	createClient(t, data, "--id", "payroll", "--redirect-uri", "https://payroll.example/cb")
	now := fixClock(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	withStore(t, data, func(st storage.Store) {
		if err := st.RecordSignIn(t.Context(), storage.SignIn{UserID: u.ID, At: now, IP: "192.0.2.10", Network: "192.0.2.0/24", DeviceID: "home"}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateFactor(t.Context(), storage.Factor{ID: "f1", UserID: u.ID, Kind: "totp", Name: "Phone", Secret: []byte("sealed"), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	})
	if x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.99", "--device", "known"); x.Outcome != "satisfied" {
		t.Fatalf("before the signal: %+v", x)
	}
	withStore(t, data, func(st storage.Store) {
		got, err := st.UserByID(t.Context(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		got.RiskFloor, got.RiskFloorUntil, got.RiskFloorReason = "urn:keystep:acr:mfa", now.Add(24*time.Hour), "device not compliant, reported by https://edr.example"
		if err := st.UpdateUser(t.Context(), got); err != nil {
			t.Fatal(err)
		}
	})
	if r := mustKeystep(t, "", "users", "show", "alice", "--data", data); !strings.Contains(r.stdout, "risk floor: urn:keystep:acr:mfa until 2026-03-03T09:00:00Z (device not compliant") {
		t.Errorf("users show:\n%s", r.stdout)
	}
	x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.99", "--device", "known")
	if x.Outcome != "need_factor" || len(x.Signals) != 1 || x.Signals[0].Name != "received_signal" {
		t.Fatalf("with the signal: %+v", x)
	}
	r := mustKeystep(t, "", "explain", "--data", data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.99", "--device", "known")
	for _, want := range []string{"received_signal", "received signal: device not compliant, reported by https://edr.example (until 2026-03-03T09:00:00Z", "authenticator app"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q:\n%s", want, r.stdout)
		}
	}
	fixClock(t, now.Add(25*time.Hour))
	if x := explainRun(t, data, "--user", "alice", "--client", "payroll", "--ip", "192.0.2.99", "--device", "known"); x.Outcome != "satisfied" {
		t.Fatalf("after the floor ran out: %+v", x)
	}
}
