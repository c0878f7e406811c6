package sim_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keystep/keystep/idp/sim"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

func openSQLite(ctx context.Context, dir string) (storage.Store, error) {
	return sqlite.Open(ctx, filepath.Join(dir, "keystep.db"))
}

// A short run of the default rules meets every target of issue 11, with
// assertions on outcome counts, never on times.
func TestDefaultRulesMeetTheTargets(t *testing.T) {
	r, err := sim.Run(t.Context(), sim.Config{Seed: 7, Users: 30, Days: 3, Open: openSQLite})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range r.Targets {
		if !tg.Met {
			t.Errorf("target %q: want %s, got %s", tg.Name, tg.Want, tg.Got)
		}
	}
	if r.Legit.SignIns != 30*3*2 {
		t.Errorf("%d legitimate sign-ins, want %d", r.Legit.SignIns, 30*3*2)
	}
	if r.Legit.Failed != 0 {
		t.Errorf("%d legitimate sign-ins failed", r.Legit.Failed)
	}
	for _, s := range r.Scenarios {
		if s.Attempts == 0 {
			t.Errorf("%s: no attempts", s.Name)
		}
		switch s.Name {
		case "targeted: stolen password, new device and network", "impossible travel":
			if s.Challenged+s.Denied != s.Attempts-(s.Attempts-s.SecondFactorUsers) && s.SucceededAgainstSecondFactor != 0 {
				t.Errorf("%s: %+v", s.Name, s)
			}
		case "stolen session cookie replayed elsewhere", "authenticator code guessing":
			if s.Succeeded != 0 {
				t.Errorf("%s: %d succeeded", s.Name, s.Succeeded)
			}
		}
	}
}

// The same seed gives the same outcome counts.
func TestRunsAreReproducible(t *testing.T) {
	run := func() sim.Report {
		r, err := sim.Run(t.Context(), sim.Config{Seed: 11, Users: 10, Days: 2, StuffingPairs: 300, Open: openSQLite})
		if err != nil {
			t.Fatal(err)
		}
		r.Elapsed = ""
		r.Legit.PromptMillis = 0
		return r
	}
	a, b := run(), run()
	if a.Legit != b.Legit || len(a.Scenarios) != len(b.Scenarios) {
		t.Fatalf("runs differ:\n%+v\n%+v", a.Legit, b.Legit)
	}
	for i := range a.Scenarios {
		if a.Scenarios[i] != b.Scenarios[i] {
			t.Errorf("%s differs: %+v vs %+v", a.Scenarios[i].Name, a.Scenarios[i], b.Scenarios[i])
		}
	}
}
