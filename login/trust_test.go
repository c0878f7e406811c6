package login

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/storage"
)

// enrolledOf summarises WebAuthn credentials in two entries: the ones that
// may count toward phr, and the provisional rest (DESIGN §3.3), so that a
// waiting passkey never makes phr look reachable.
func TestEnrolledOfSplitsTrustedAndProvisionalPasskeys(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u := storage.User{ID: "u1", PasswordHash: "$argon2id$…"}
	synced := `{"flags":{"userVerified":true,"backupEligible":true}}`
	bound := `{"flags":{"userVerified":false,"backupEligible":false}}`
	blocked := `{"flags":{"backupEligible":false},"authenticator":{"cloneWarning":true}}`
	key := func(id, secret string, trustedAt time.Time) storage.Factor {
		return storage.Factor{ID: id, UserID: "u1", Kind: "webauthn", Secret: []byte(secret), CreatedAt: t0, TrustedAt: trustedAt}
	}
	pwd := stepup.Enrolled{Method: stepup.Password}
	for _, tt := range []struct {
		name    string
		factors []storage.Factor
		phr     func(storage.Factor) bool
		want    []stepup.Enrolled
	}{
		{"a trusted synced passkey", []storage.Factor{key("k1", synced, t0)}, nil,
			[]stepup.Enrolled{pwd, {Method: stepup.WebAuthn, UserVerifying: true}}},
		{"a waiting device-bound key is provisional", []storage.Factor{key("k1", bound, time.Time{})}, nil,
			[]stepup.Enrolled{pwd, {Method: stepup.WebAuthn, DeviceBound: true, Provisional: true}}},
		{"one of each: the device-bound flag stays with the waiting key", []storage.Factor{key("k1", synced, t0), key("k2", bound, time.Time{})}, nil,
			[]stepup.Enrolled{pwd, {Method: stepup.WebAuthn, UserVerifying: true}, {Method: stepup.WebAuthn, DeviceBound: true, Provisional: true}}},
		{"a ripe key counts where the request says so", []storage.Factor{key("k1", bound, time.Time{})}, func(storage.Factor) bool { return true },
			[]stepup.Enrolled{pwd, {Method: stepup.WebAuthn, DeviceBound: true}}},
		{"a blocked key is nothing", []storage.Factor{key("k1", blocked, t0)}, nil, []stepup.Enrolled{pwd}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, signin.Enrolled(u, tt.factors, 0, tt.phr)); diff != "" {
				t.Errorf("enrolledOf (-want +got):\n%s", diff)
			}
		})
	}
}

// A passkey is ripe once its cooling-off is over, and only while untrusted.
func TestRipe(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0
	h := &Handler{cfg: Config{Now: func() time.Time { return now }, PasskeyCoolingOff: DefaultPasskeyCoolingOff}}
	f := storage.Factor{Kind: "webauthn", CreatedAt: t0}
	for _, tt := range []struct {
		name string
		at   time.Duration
		f    storage.Factor
		want bool
	}{
		{"just added", 0, f, false},
		{"a second before the cooling-off ends", 24*time.Hour - time.Second, f, false},
		{"when it ends", 24 * time.Hour, f, true},
		{"trusted already", 48 * time.Hour, storage.Factor{Kind: "webauthn", CreatedAt: t0, TrustedAt: t0}, false},
		{"an authenticator app", 48 * time.Hour, storage.Factor{Kind: "totp", CreatedAt: t0}, false},
	} {
		now = t0.Add(tt.at)
		if got := h.ripe(tt.f); got != tt.want {
			t.Errorf("%s: ripe = %v, want %v", tt.name, got, tt.want)
		}
	}
}
