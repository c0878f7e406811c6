package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/admin/impact"
)

// policyPreview is `keystep policy preview`: it replays the sign-ins the
// audit log recorded in the last --days under the current policy (the
// active stored version, else the --config file the server runs with; a
// --current file overrides both) and the proposed one (-f), and prints
// what would change. The clients' floors are the stored clients',
// overlaid with the clients the proposed file lists (as `keystep apply -f`
// would store them). It writes nothing.
func policyPreview(ctx context.Context, args []string, stdout io.Writer) error {
	var proposedFile, currentFile, configFile string
	var days int
	fs, c, err := sub("policy preview", args, func(fs *flag.FlagSet) {
		fs.StringVar(&proposedFile, "f", "", "the proposed policy: a file in the --config format")
		fs.StringVar(&currentFile, "current", "", "the current policy (default: the active stored version, else --config)")
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file the server runs with: the current policy while no version is stored")
		fs.IntVar(&days, "days", 30, "how many days of recorded sign-ins to replay")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "policy preview"); err != nil {
		return err
	}
	if proposedFile == "" {
		return usageError{"policy preview: -f FILE (the proposed policy) is required"}
	}
	if days < 1 || days > 3660 {
		return usageError{"policy preview: --days 1..3660"}
	}
	prop, err := loadConfig(proposedFile)
	if err != nil {
		return fmt.Errorf("proposed policy: %w", err)
	}
	curFile := currentFile
	if curFile == "" {
		curFile = configFile
	}
	cur, err := loadConfig(curFile)
	if err != nil {
		return fmt.Errorf("current policy: %w", err)
	}
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	curSnap, curName := cur.snap, orDefault(curFile)
	if currentFile == "" {
		curSnap = cur.live(st).Current()
		if curSnap.Version > 0 {
			curName = fmt.Sprintf("the active version %d", curSnap.Version)
		}
	}
	r, err := admin.PreviewPolicy(ctx, st, curSnap, prop.snap, clock().Add(-time.Duration(days)*24*time.Hour), prop.clients...)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, struct {
			Current  string `json:"current"`
			Proposed string `json:"proposed"`
			Days     int    `json:"days"`
			impact.Report
		}{curName, proposedFile, days, r})
	}
	return printPreview(stdout, r, curName, proposedFile, days)
}

func orDefault(file string) string {
	if file == "" {
		return "the built-in defaults"
	}
	return file
}

// changeNames are the report's columns, in order.
var changeNames = []struct {
	c    impact.Change
	head string
}{
	{impact.ExtraPrompt, "extra prompt"}, {impact.Denied, "denied"}, {impact.Removed, "fewer prompts"},
	{impact.Allowed, "now allowed"}, {impact.Different, "other change"},
}

// changeHead is how the report names a change.
func changeHead(c impact.Change) string {
	for _, n := range changeNames {
		if n.c == c {
			return n.head
		}
	}
	return string(c)
}

func printPreview(w io.Writer, r impact.Report, current, proposed string, days int) error {
	var errs []error
	p := func(format string, a ...any) {
		_, err := fmt.Fprintf(w, format, a...)
		errs = append(errs, err)
	}
	if days > 0 {
		p("Policy impact preview: %s against %s, the sign-ins of the last %d day%s\n", proposed, current, days, plural(days))
	} else {
		p("Policy impact preview: %s against %s, every recorded sign-in\n", proposed, current)
	}
	notRep := 0
	for _, n := range r.NotReplayable {
		notRep += n
	}
	p("Replayed %d sign-in%s; %d audit event%s not replayable.\n\n", r.Total.SignIns, plural(r.Total.SignIns), notRep, plural(notRep))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tSIGN-INS\tEXTRA PROMPT\tDENIED\tFEWER PROMPTS\tNOW ALLOWED\tOTHER")
	row := func(name string, c impact.Counts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", name, c.SignIns, c.ExtraPrompt, c.Denied, c.Removed, c.Allowed, c.Different)
	}
	for _, id := range slices.Sorted(maps.Keys(r.Clients)) {
		row(id, r.Clients[id])
	}
	row("total", r.Total)
	errs = append(errs, tw.Flush())
	list := func(title string, m map[string]int) {
		if len(m) == 0 {
			return
		}
		p("\n%s:\n", title)
		keys := slices.Sorted(maps.Keys(m))
		slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
		for _, k := range keys {
			ch, what, _ := strings.Cut(k, " ")
			p("  %6d  %s: %s\n", m[k], changeHead(impact.Change(ch)), what)
		}
	}
	list("By factor or error", r.Total.ByWhat)
	list("By reason", r.Total.ByReason)
	if len(r.Examples) > 0 {
		p("\nExamples (audit sequence numbers):\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range r.Examples {
			fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.ClientID, e.UserID, changeHead(e.Change), printable(e.What), printable(e.Reason))
		}
		errs = append(errs, tw.Flush())
	}
	if notRep > 0 {
		p("\nNot replayable (counted, not guessed):\n")
		for _, k := range slices.Sorted(maps.Keys(r.NotReplayable)) {
			p("  %6d  %s\n", r.NotReplayable[k], k)
		}
	}
	if r.RecordedDiffers > 0 {
		p("\n%d sign-in%s ended otherwise than the current policy decides them now: the policy changed since they were recorded.\n", r.RecordedDiffers, plural(r.RecordedDiffers))
	}
	for _, cv := range r.Caveats {
		p("\nCaveat: %s\n", cv)
	}
	return errors.Join(errs...)
}
