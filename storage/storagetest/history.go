package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var historyTests = []test{
	{"a user with no sign-ins has no history", func(t *testing.T, s storage.Store) {
		must(t, s.CreateUser(t.Context(), newUser("u1", "alice")))
		got, err := s.SignInHistory(t.Context(), "u1", "dev1", "192.0.2.0/24")
		must(t, err)
		check(t, storage.HistoryFacts{}, got)
	}},
	{"a recorded sign-in makes its device and network known and is the latest", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		must(t, s.CreateUser(ctx, newUser("u2", "bob")))
		first := storage.SignIn{UserID: "u1", At: t0, IP: "192.0.2.7", Network: "192.0.2.0/24", DeviceID: "dev1",
			HasLocation: true, Lat: 51.5, Lon: -0.12, Place: "London"}
		must(t, s.RecordSignIn(ctx, first))
		second := storage.SignIn{UserID: "u1", At: t0.Add(time.Hour), IP: "198.51.100.9", Network: "198.51.100.0/24", DeviceID: "dev2"}
		must(t, s.RecordSignIn(ctx, second))

		got, err := s.SignInHistory(ctx, "u1", "dev1", "192.0.2.0/24")
		must(t, err)
		check(t, storage.HistoryFacts{Any: true, DeviceKnown: true, NetworkKnown: true, Last: second}, got)

		got, err = s.SignInHistory(ctx, "u1", "dev3", "203.0.113.0/24")
		must(t, err)
		check(t, storage.HistoryFacts{Any: true, Last: second}, got)

		// Another user's devices and networks are not this user's.
		got, err = s.SignInHistory(ctx, "u2", "dev1", "192.0.2.0/24")
		must(t, err)
		check(t, storage.HistoryFacts{}, got)
	}},
	{"a forgotten device is new again", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, newUser("u1", "alice")))
		must(t, s.RecordSignIn(ctx, storage.SignIn{UserID: "u1", At: t0, IP: "192.0.2.7", Network: "192.0.2.0/24", DeviceID: "dev1"}))
		must(t, s.ForgetDevice(ctx, "u1", "dev1"))
		got, err := s.SignInHistory(ctx, "u1", "dev1", "192.0.2.0/24")
		must(t, err)
		if got.DeviceKnown || !got.NetworkKnown || !got.Any {
			t.Errorf("after forgetting: %+v", got)
		}
	}},
}
