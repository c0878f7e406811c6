package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/keystep/keystep/cmd/keystep/internal/bench"
	"github.com/keystep/keystep/storage"
)

// benchCmd measures a Keystep server (cmd/keystep/internal/bench).
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, asJSON, err := parseBench(args)
	if err != nil {
		return err
	}
	tuneGC() // the load generator shares the machine: it should take as little of it as the server
	return bench.Run(ctx, bench.Config{
		Options: o,
		Open: func(ctx context.Context, data, database string) (storage.Store, []byte, error) {
			return (&common{data: data, database: database}).open(ctx)
		},
		Keystep: keystepCommand,
		Print: func(rep bench.Report) error {
			if asJSON {
				return printJSON(stdout, rep)
			}
			rep.Table(stdout)
			return nil
		},
		Progress: stderr,
	})
}

// keystepCommand is the command that runs `keystep ARGS`: this executable.
func keystepCommand(args ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find own executable: %w", err)
	}
	return exec.Command(exe, args...), nil
}

// parseBench reads bench's command line; asJSON is --json.
func parseBench(args []string) (o bench.Options, asJSON bool, err error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var scenarios string
	fs.IntVar(&o.Workers, "workers", bench.DefaultWorkers(), "concurrent workers per scenario")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each scenario runs")
	fs.IntVar(&o.Count, "count", 0, "run each scenario for this many operations instead of --duration")
	fs.StringVar(&scenarios, "scenario", "all", "comma-separated scenarios: "+strings.Join(bench.ScenarioNames(), ","))
	fs.StringVar(&o.URL, "url", "", "benchmark the server at this URL instead of starting one (loopback only unless --allow-remote)")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a --url that is not a loopback address")
	fs.StringVar(&o.Data, "data", "", "with --url: the server's data folder (bench-* users and clients are created in it)")
	// Not KEYSTEP_DATABASE: that names the operator's database, and bench
	// writes to the one it is given.
	fs.StringVar(&o.Database, "database", "", "run the child server on this empty PostgreSQL database (postgres://…) instead of SQLite; with --url, the server's database (loopback only unless --allow-remote)")
	fs.IntVar(&o.PID, "pid", 0, "with --url: the server's process ID, to report its CPU and memory")
	fs.StringVar(&o.Pprof, "pprof", "", "serve the child server's Go profiler on this loopback address (see serve --pprof)")
	fs.BoolVar(&asJSON, "json", false, "machine-readable JSON output")
	fs.BoolVar(&o.Keep, "keep", false, "keep the child server's data folder and print where it is")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, false, err
		}
		return o, false, usageError{"bench: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return o, false, usageError{fmt.Sprintf("bench: unexpected argument %q", fs.Arg(0))}
	}
	if scenarios == "all" || scenarios == "" {
		o.Scenarios = bench.ScenarioNames()
	} else {
		for s := range strings.SplitSeq(scenarios, ",") {
			o.Scenarios = append(o.Scenarios, strings.TrimSpace(s))
		}
	}
	if err := o.Validate(); err != nil {
		return o, false, usageError{"bench:\n" + err.Error()}
	}
	return o, asJSON, nil
}
