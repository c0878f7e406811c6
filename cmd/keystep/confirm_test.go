package main

import (
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// keystep users confirm-passkey (issue 15, design rule A): an operator
// vouches for a passkey added from a session below phr, so it counts as
// phishing-resistant at once. This is how the first administrator, whose
// first passkey comes from a password-only session, opens the console
// without waiting for the cooling-off. Bad input changes nothing.
func TestUsersConfirmPasskey(t *testing.T) {
	d := t.TempDir()
	alice := createUser(t, d, "alice")
	bob := createUser(t, d, "bob")
	t0 := fixClock(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) // the cooling-off runs from here on the command's clock
	withStore(t, d, func(st storage.Store) {
		for _, f := range []storage.Factor{
			{ID: "k1", UserID: alice.ID, Kind: "webauthn", Name: "Laptop", Secret: []byte("{}"), CreatedAt: t0},
			{ID: "k2", UserID: bob.ID, Kind: "webauthn", Name: "Bob's key", Secret: []byte("{}"), CreatedAt: t0},
			{ID: "t1", UserID: alice.ID, Kind: "totp", Name: "Phone", Secret: []byte("sealed"), CreatedAt: t0},
		} {
			if err := st.CreateFactor(t.Context(), f); err != nil {
				t.Fatal(err)
			}
		}
	})
	r := mustKeystep(t, "", "users", "show", "alice", "--data", d)
	if !strings.Contains(r.stdout, "not yet phishing-resistant: keystep users confirm-passkey alice --credential k1") {
		t.Errorf("show does not say how to confirm the key:\n%s", r.stdout)
	}

	wantExit(t, keystep(t, "", "users", "confirm-passkey", "alice", "--data", d), 2, "--credential is required")
	wantExit(t, keystep(t, "", "users", "unlock", "alice", "--credential", "k1", "--data", d), 2, "only for confirm-passkey")
	for _, id := range []string{"k2", "t1", "nope"} {
		wantExit(t, keystep(t, "", "users", "confirm-passkey", "alice", "--credential", id, "--data", d), 1, "no passkey or security key with ID")
	}
	withStore(t, d, func(st storage.Store) {
		for _, id := range []string{"k1", "k2"} {
			if f, _ := st.FactorByID(t.Context(), id); !f.TrustedAt.IsZero() {
				t.Errorf("%s trusted by a refused command", id)
			}
		}
	})

	r = mustKeystep(t, "", "users", "confirm-passkey", "alice", "--credential", "k1", "--reason", "first admin, set up by me", "--data", d)
	if !strings.Contains(r.stdout, "alice: confirm-passkey done") {
		t.Errorf("confirm-passkey says %q", r.stdout)
	}
	withStore(t, d, func(st storage.Store) {
		if f, _ := st.FactorByID(t.Context(), "k1"); f.TrustedAt.IsZero() {
			t.Error("k1 is not trusted")
		}
	})
	ev := auditLog(t, d)
	last := ev[len(ev)-1]
	if last.Type != "admin.user_confirm_passkey" || last.ActorID != "cli" || last.UserID != alice.ID || last.Reason != "first admin, set up by me" || last.Details["factor"] != "k1" {
		t.Errorf("audit %+v", last)
	}
	r = mustKeystep(t, "", "users", "confirm-passkey", "alice", "--credential", "k1", "--data", d)
	if !strings.Contains(r.stdout, "already counts as phishing-resistant") {
		t.Errorf("confirming twice says %q", r.stdout)
	}
	if n := len(auditLog(t, d)); n != len(ev) {
		t.Errorf("confirming twice wrote %d audit rows", n-len(ev))
	}
}
