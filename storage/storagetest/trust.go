package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// The trust of a passkey or security key (issue 15, design rule A): when it
// started to count as phishing-resistant, and since when a device and a
// network are the user's. Kept in a file of its own and added to the
// Factors and History groups, so the rows stay apart from the others.
func init() {
	factorTests = append(factorTests, trustTests...)
	historyTests = append(historyTests, knownSinceTests...)
}

var knownSinceTests = []test{
	{"known since: the first sign-in of a device and of a network, zero when never", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		must(t, s.CreateUser(ctx, newUser("u2", "bob")))
		dev, net, err := s.KnownSince(ctx, "u1", "dev1", "192.0.2.0/24")
		must(t, err)
		check(t, [2]time.Time{}, [2]time.Time{dev, net})

		must(t, s.RecordSignIn(ctx, storage.SignIn{UserID: "u1", At: t0, IP: "192.0.2.7", Network: "192.0.2.0/24", DeviceID: "dev1"}))
		must(t, s.RecordSignIn(ctx, storage.SignIn{UserID: "u1", At: t0.Add(time.Hour), IP: "198.51.100.9", Network: "198.51.100.0/24", DeviceID: "dev1"}))
		must(t, s.RecordSignIn(ctx, storage.SignIn{UserID: "u1", At: t0.Add(2 * time.Hour), IP: "192.0.2.8", Network: "192.0.2.0/24", DeviceID: "dev2"}))
		dev, net, err = s.KnownSince(ctx, "u1", "dev1", "198.51.100.0/24")
		must(t, err)
		check(t, [2]time.Time{t0, t0.Add(time.Hour)}, [2]time.Time{dev, net})
		dev, net, err = s.KnownSince(ctx, "u1", "dev2", "192.0.2.0/24")
		must(t, err)
		check(t, [2]time.Time{t0.Add(2 * time.Hour), t0}, [2]time.Time{dev, net})
		first, err := s.FirstSignInAt(ctx, "u1")
		must(t, err)
		check(t, t0, first)
		first, err = s.FirstSignInAt(ctx, "u2")
		must(t, err)
		check(t, time.Time{}, first)
		dev, net, err = s.KnownSince(ctx, "u1", "dev3", "203.0.113.0/24")
		must(t, err)
		check(t, [2]time.Time{}, [2]time.Time{dev, net})
		// Another user's devices and networks are not this user's.
		dev, net, err = s.KnownSince(ctx, "u2", "dev1", "192.0.2.0/24")
		must(t, err)
		check(t, [2]time.Time{}, [2]time.Time{dev, net})
	}},
}

var trustTests = []test{
	{"a factor's trust time and its adding session's start round-trip, zero while untrusted", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		trusted := newFactor("f1", "u1", storage.FactorWebAuthn, t0)
		trusted.TrustedAt = t0
		pending := newFactor("f2", "u1", storage.FactorWebAuthn, t0.Add(time.Hour))
		pending.AddedInSessionAt = t0.Add(50 * time.Minute)
		must(t, s.CreateFactor(ctx, trusted))
		must(t, s.CreateFactor(ctx, pending))
		list, err := s.ListFactors(ctx, "u1")
		must(t, err)
		check(t, []storage.Factor{trusted, pending}, list)
		if !list[1].TrustedAt.IsZero() {
			t.Errorf("an untrusted factor came back trusted at %v", list[1].TrustedAt)
		}
	}},
	{"trusting a factor sets its trust time once; updating it never changes it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		f := newFactor("f1", "u1", storage.FactorWebAuthn, t0)
		must(t, s.CreateFactor(ctx, f))
		// Another user's factor, and an unknown one: not found, nothing changed.
		wantErr(t, s.TrustFactor(ctx, "u2", "f1", t0.Add(time.Hour)), storage.ErrNotFound)
		wantErr(t, s.TrustFactor(ctx, "u1", "nope", t0.Add(time.Hour)), storage.ErrNotFound)
		got, err := s.FactorByID(ctx, "f1")
		must(t, err)
		check(t, f, got)

		must(t, s.TrustFactor(ctx, "u1", "f1", t0.Add(time.Hour)))
		wantErr(t, s.TrustFactor(ctx, "u1", "f1", t0.Add(2*time.Hour)), storage.ErrConflict)
		f.TrustedAt = t0.Add(time.Hour)
		got, err = s.FactorByID(ctx, "f1")
		must(t, err)
		check(t, f, got)

		// A sign-in updating the credential (counter, last use) with a copy
		// read before the trust keeps the trust.
		stale := f
		stale.TrustedAt = time.Time{}
		stale.Secret, stale.LastUsedAt = []byte(`{"signCount":9}`), t0.Add(3*time.Hour)
		must(t, s.UpdateFactor(ctx, stale))
		got, err = s.FactorByID(ctx, "f1")
		must(t, err)
		if !got.TrustedAt.Equal(t0.Add(time.Hour)) || string(got.Secret) != `{"signCount":9}` {
			t.Errorf("after an update: trusted at %v, secret %q", got.TrustedAt, got.Secret)
		}
	}},
	{"20 concurrent trusts of one factor: exactly one succeeds", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateFactor(ctx, newFactor("f1", "u1", storage.FactorWebAuthn, t0)))
		errs := race(20, func(i int) error { return s.TrustFactor(ctx, "u1", "f1", t0.Add(time.Duration(i+1)*time.Second)) })
		w := oneWinner(t, errs, storage.ErrConflict)
		got, err := s.FactorByID(ctx, "f1")
		must(t, err)
		if want := t0.Add(time.Duration(w+1) * time.Second); !got.TrustedAt.Equal(want) {
			t.Errorf("trusted at %v, want the winner's %v", got.TrustedAt, want)
		}
	}},
	{"a session's provisional WebAuthn event round-trips", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		sess := newSession("s1", "u1")
		sess.Factors[1].Provisional = true
		must(t, s.CreateSession(ctx, sess))
		got, err := s.SessionByID(ctx, "s1", t0)
		must(t, err)
		check(t, sess, got)
		next := newSession("s2", "u1")
		must(t, s.RotateSession(ctx, "s1", next))
		got, err = s.SessionByID(ctx, "s2", t0)
		must(t, err)
		if got.Factors[1].Provisional {
			t.Errorf("a trusted event came back provisional")
		}
	}},
}
