package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/keystep/keystep/idp/sim"
	"github.com/keystep/keystep/storage"
	"github.com/keystep/keystep/storage/sqlite"
)

// simulate replays a seeded synthetic population of users and attackers
// against a Keystep on loopback and reports how the risk rules did.
func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var seed uint64
	var users, days, pairs int
	var configFile string
	_, c, err := sub("simulate", args, func(fs *flag.FlagSet) {
		fs.Uint64Var(&seed, "seed", 1, "random seed: the same seed replays the same population and attacks")
		fs.IntVar(&users, "users", 60, "population size")
		fs.IntVar(&days, "days", 7, "simulated days of legitimate sign-ins")
		fs.IntVar(&pairs, "stuffing-pairs", 5000, "size of the credential-stuffing list")
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file whose levels and risk rules to test")
	})
	if err != nil {
		return err
	}
	if users < 1 || users > 10000 || days < 1 || days > 365 || pairs < 1 || pairs > 1000000 {
		return usageError{"simulate: --users 1..10000, --days 1..365, --stuffing-pairs 1..1000000"}
	}
	set, err := loadConfig(configFile)
	if err != nil {
		return err
	}
	r, err := sim.Run(ctx, sim.Config{
		Seed: seed, Users: users, Days: days, StuffingPairs: pairs,
		Policy: set.policy, Risk: set.risk, Progress: stderr,
		Open: func(ctx context.Context, dir string) (storage.Store, error) {
			return sqlite.Open(ctx, filepath.Join(dir, "keystep.db"))
		},
	})
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, r)
	}
	fmt.Fprintf(stdout, "seed %d, %d users, %d days, %s\n\n", r.Seed, r.Users, r.Days, r.Elapsed)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK\tATTEMPTS\tTRIED\tCHALLENGED\tDENIED\tSUCCEEDED\tAGAINST 2FA (SUCCEEDED)")
	for _, s := range r.Scenarios {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d (%d)\n", s.Name, s.Attempts, s.Tried, s.Challenged, s.Denied, s.Succeeded, s.SecondFactorUsers, s.SucceededAgainstSecondFactor)
	}
	if err := tw.Flush(); err != nil {
		return err
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
