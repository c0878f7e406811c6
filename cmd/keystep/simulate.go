package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/keystep/keystep/cmd/keystep/internal/sim"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/admin/impact"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// simulate replays a seeded synthetic population of users and attackers
// against a Keystep on loopback and reports how the risk rules did.
func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	var seed uint64
	var users, days, pairs, guessDays int
	var configFile, compareFile string
	_, c, err := sub("simulate", args, func(fs *flag.FlagSet) {
		fs.Uint64Var(&seed, "seed", 1, "random seed: the same seed replays the same population and attacks")
		fs.IntVar(&users, "users", 60, "population size")
		fs.IntVar(&days, "days", 7, "simulated days of legitimate sign-ins")
		fs.IntVar(&pairs, "stuffing-pairs", 5000, "size of the credential-stuffing list")
		fs.IntVar(&guessDays, "guess-days", 30, "simulated days the slow code guesser keeps at it")
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file whose levels and risk rules to test")
		fs.StringVar(&compareFile, "compare", "", "a proposed policy (the --config format): replay the run's recorded sign-ins under it and report what would change")
	})
	if err != nil {
		return err
	}
	if users < 1 || users > 10000 || days < 1 || days > 365 || pairs < 1 || pairs > 1000000 || guessDays < 1 || guessDays > 365 {
		return usageError{"simulate: --users 1..10000, --days 1..365, --stuffing-pairs 1..1000000, --guess-days 1..365"}
	}
	set, err := loadConfig(configFile)
	if err != nil {
		return err
	}
	cfg := sim.Config{
		Seed: seed, Users: users, Days: days, StuffingPairs: pairs, GuessDays: guessDays,
		Policy: set.policy, Risk: set.risk, Progress: stderr,
		Open: func(ctx context.Context, dir string) (storage.Store, error) {
			return sqlite.Open(ctx, filepath.Join(dir, "keystep.db"))
		},
	}
	var cmp *impact.Report
	if compareFile != "" {
		prop, err := loadConfig(compareFile)
		if err != nil {
			return fmt.Errorf("proposed policy: %w", err)
		}
		cfg.Inspect = func(ctx context.Context, st storage.Store) error {
			r, err := admin.PreviewPolicy(ctx, st, set.snap, prop.snap, time.Time{}, prop.clients...)
			cmp = &r
			return err
		}
	}
	r, err := sim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if c.json {
		if cmp != nil {
			return printJSON(stdout, struct {
				sim.Report
				Compare *impact.Report `json:"compare"`
			}{r, cmp})
		}
		return printJSON(stdout, r)
	}
	if cmp != nil {
		defer func() {
			if err == nil {
				fmt.Fprintln(stdout)
				err = printPreview(stdout, *cmp, orDefault(configFile), compareFile, 0)
			}
		}()
	}
	fmt.Fprintf(stdout, "seed %d, %d users, %d days, %s\n\n", r.Seed, r.Users, r.Days, r.Elapsed)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tATTEMPTS\tTRIED\tCHALLENGED\tDENIED\tSUCCEEDED\tAGAINST 2FA (SUCCEEDED)\tREQUESTS")
	for _, s := range r.Scenarios {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d (%d)\t%d\n", s.Name, s.Attempts, s.Tried, s.Challenged, s.Denied, s.Succeeded, s.SecondFactorUsers, s.SucceededAgainstSecondFactor, s.Requests)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range r.Scenarios {
		switch {
		case s.Guessing != nil:
			g := s.Guessing
			fmt.Fprintf(stdout, "\n%s: %d victim%s, %d days", s.Name, g.Victims, plural(g.Victims), g.Days)
			if g.Stopped > 0 {
				fmt.Fprintf(stdout, " (request budget spent for %d of them, the first after %.1f days: the server kept checking codes)", g.Stopped, g.DaysRun)
			}
			fmt.Fprintf(stdout, ", %d Retry-After waits; codes checked: %d authenticator-app, %d recovery, at most %d of one factor for one victim; chance of a hit %.3g %% (%.3g %% at that rate for %d days); tokens %d\n",
				g.Waits, g.TOTPChecked, g.RecoveryChecked, g.MostChecked, 100*g.Chance, 100*g.ProjectedChance, g.Days, g.Tokens)
		case s.Relay != nil:
			rl := s.Relay
			fmt.Fprintf(stdout, "\n%s: %d victim%s (%d admin); relayed into the portal %d, passkeys added %d; phr tokens %d at once, %d 25 h later from the same device; admin console %d\n",
				s.Name, rl.Victims, plural(rl.Victims), rl.Admins, rl.Relayed, rl.PasskeysAdded, rl.PHR, rl.PHRLater, rl.AdminConsole)
		case s.Lockout != nil:
			lo := s.Lockout
			fmt.Fprintf(stdout, "\n%s: %d owner%s, attacking addresses per owner %d, %d days; owners' sign-ins from a known device %d, refused %d (%.2f %%), prompted %d; the attacker's passwords checked %d of %d\n",
				s.Name, lo.Owners, plural(lo.Owners), lo.Addresses, lo.Days, lo.OwnerSignIns, lo.OwnerRefused, pctOf(lo.OwnerRefused, lo.OwnerSignIns), lo.OwnerPrompted, s.Tried, s.Attempts)
			if lo.Stopped > 0 {
				fmt.Fprintf(stdout, "  (request budget spent for %d attacking addresses: the server kept checking their passwords)\n", lo.Stopped)
			}
		}
	}
	l := r.Legit
	fmt.Fprintf(stdout, "\nlegitimate sign-ins: %d; known device or network: %d, prompted %d (%.2f %%); new device and network: %d, prompted %d; failed %d; a prompt added %.1f ms\n\n",
		l.SignIns, l.Known, l.KnownPrompted, pctOf(l.KnownPrompted, l.Known), l.New, l.NewPrompted, l.Failed, l.PromptMillis)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tWANT\tGOT\tMET")
	for _, t := range r.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", t.Name, t.Want, t.Got, t.Met)
	}
	return tw.Flush()
}

func pctOf(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return 100 * float64(n) / float64(d)
}
