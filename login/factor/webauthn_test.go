package factor_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

func credentialJSON(t *testing.T, c webauthn.Credential) []byte {
	t.Helper()
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestReadCredentialFlags(t *testing.T) {
	tests := []struct {
		name string
		cred webauthn.Credential
		want factor.CredentialFlags
	}{
		{"a device-bound passkey that verified the user",
			webauthn.Credential{Flags: webauthn.CredentialFlags{UserVerified: true}},
			factor.CredentialFlags{UserVerified: true}},
		{"a synced passkey is backup-eligible",
			webauthn.Credential{Flags: webauthn.CredentialFlags{BackupEligible: true, BackupState: true}},
			factor.CredentialFlags{BackupEligible: true}},
		{"a security key is cross-platform",
			webauthn.Credential{Authenticator: webauthn.Authenticator{Attachment: protocol.CrossPlatform}},
			factor.CredentialFlags{CrossPlatform: true}},
		{"a platform authenticator is not",
			webauthn.Credential{Authenticator: webauthn.Authenticator{Attachment: protocol.Platform}},
			factor.CredentialFlags{}},
		{"a credential whose counter went backwards is blocked",
			webauthn.Credential{Authenticator: webauthn.Authenticator{CloneWarning: true}},
			factor.CredentialFlags{CloneWarning: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := factor.ReadCredentialFlags(credentialJSON(t, tt.cred))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}
	for _, corrupt := range []string{"", "not json", `{"flags": 1}`} {
		if _, err := factor.ReadCredentialFlags([]byte(corrupt)); err == nil {
			t.Errorf("ReadCredentialFlags(%q) accepted a corrupt credential", corrupt)
		}
	}
}

func TestPasskeyUser(t *testing.T) {
	u := storage.User{ID: "u-alice", Username: "alice"}
	key := func(id string, credID byte) storage.Factor {
		return storage.Factor{ID: id, UserID: u.ID, Kind: "webauthn", Secret: credentialJSON(t, webauthn.Credential{ID: []byte{credID}})}
	}
	fs := []storage.Factor{key("f1", 1), {ID: "f2", UserID: u.ID, Kind: "totp", Secret: []byte("sealed")}, key("f3", 3)}
	p, err := factor.NewPasskeyUser(u, fs)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.WebAuthnID()) != "u-alice" || p.WebAuthnName() != "alice" || len(p.WebAuthnCredentials()) != 2 {
		t.Errorf("adapter: id %q, name %q, %d credentials; want u-alice, alice, 2 (the TOTP factor left out)", p.WebAuthnID(), p.WebAuthnName(), len(p.WebAuthnCredentials()))
	}
	if f, i := p.Find([]byte{3}); f.ID != "f3" || i != 1 {
		t.Errorf("Find(3) = %s, %d; want f3, 1", f.ID, i)
	}
	if _, i := p.Find([]byte{2}); i != -1 {
		t.Errorf("Find of a credential the user does not hold = %d, want -1", i)
	}
	if _, err := factor.NewPasskeyUser(u, []storage.Factor{{ID: "bad", Kind: "webauthn", Secret: []byte("{")}}); err == nil {
		t.Error("NewPasskeyUser accepted a corrupt credential")
	}
}

func TestWithCredential(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	f := storage.Factor{ID: "f1", Kind: "webauthn", LastUsedAt: t0}
	c := webauthn.Credential{ID: []byte{1}, Authenticator: webauthn.Authenticator{SignCount: 7}}
	flagged, err := factor.WithCredential(f, c, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !flagged.LastUsedAt.Equal(t0) {
		t.Errorf("a zero use time changed LastUsedAt to %v", flagged.LastUsedAt)
	}
	used, err := factor.WithCredential(f, c, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !used.LastUsedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("LastUsedAt = %v, want the use time", used.LastUsedAt)
	}
	p, err := factor.NewPasskeyUser(storage.User{ID: "u"}, []storage.Factor{used})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Credentials[0].Authenticator.SignCount; got != 7 {
		t.Errorf("the stored credential reads back with sign count %d, want 7", got)
	}
}

func TestNewWebAuthn(t *testing.T) {
	for _, issuer := range []string{"http://127.0.0.1:8080", "https://[::1]:8443"} {
		w, err := factor.NewWebAuthn(issuer, "Keystep")
		if err != nil || w != nil {
			t.Errorf("NewWebAuthn(%q) = %v, %v; want passkeys off (nil) for an IP address", issuer, w, err)
		}
	}
	w, err := factor.NewWebAuthn("https://login.example.com:8443/base", "Keystep")
	if err != nil || w == nil {
		t.Fatalf("NewWebAuthn = %v, %v", w, err)
	}
	if w.Config.RPID != "login.example.com" {
		t.Errorf("RP ID %q, want the issuer's host", w.Config.RPID)
	}
	if diff := cmp.Diff([]string{"https://login.example.com:8443"}, w.Config.RPOrigins); diff != "" {
		t.Errorf("origins (-want +got):\n%s", diff)
	}
}
