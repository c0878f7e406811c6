package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/throttle"
)

// explain answers "what would USER be asked by CLIENT from IP?" with the
// same assessment and decision code a real sign-in runs, writing nothing.
func explain(ctx context.Context, args []string, stdout io.Writer) error {
	var user, client, acr, ip, device, scopes, configFile string
	_, c, err := sub("explain", args, func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "username")
		fs.StringVar(&client, "client", "", "client ID")
		fs.StringVar(&acr, "acr", "", "requested acr_values (space-separated)")
		fs.StringVar(&ip, "ip", "127.0.0.1", "the address the sign-in comes from")
		fs.StringVar(&device, "device", "known", "new or known (the user's most recent device)")
		fs.StringVar(&scopes, "scope", "openid", "requested scopes (space-separated)")
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file (levels, scope minimums, risk rules)")
	})
	if err != nil {
		return err
	}
	var problems []string
	if user == "" {
		problems = append(problems, "--user is required")
	}
	if client == "" {
		problems = append(problems, "--client is required")
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		problems = append(problems, fmt.Sprintf("--ip %q is not an IP address", ip))
	}
	if device != "new" && device != "known" {
		problems = append(problems, "--device must be new or known")
	}
	if len(problems) > 0 {
		return usageError{"explain: " + strings.Join(problems, "; ")}
	}
	set, err := loadConfig(configFile)
	if err != nil {
		return err
	}
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	pol := set.live(st).Current()
	a := &signin.Assessor{Store: st, Risk: pol.Risk, Limits: throttle.DefaultLimits(), Now: clock}
	x, err := admin.Explain(ctx, st, pol, a, admin.ExplainInput{
		Username: user, ClientID: client, ACR: strings.Fields(acr), Scopes: strings.Fields(scopes),
		IP: ip, NewDevice: device == "new", UserAgent: "keystep-explain",
	})
	if err != nil {
		return err
	}
	if c.json {
		type signal struct {
			Name   string `json:"name"`
			Weight int    `json:"weight"`
			Reason string `json:"reason"`
		}
		out := struct {
			Score   int      `json:"risk_score"`
			Band    string   `json:"risk_band"`
			Signals []signal `json:"signals"`
			Outcome string   `json:"outcome"`
			Target  string   `json:"target_acr,omitempty"`
			ACR     string   `json:"acr,omitempty"`
			Next    []string `json:"next_factors,omitempty"`
			Error   string   `json:"error,omitempty"`
			Reasons []string `json:"reasons,omitempty"`
			Waived  bool     `json:"risk_waived,omitempty"`
		}{Score: x.Risk.Score, Band: x.Risk.Band.String(), Outcome: x.Decision.Outcome.String(),
			Target: x.Decision.Target, ACR: x.Decision.ACR, Error: x.Decision.Error, Waived: x.Decision.RiskWaived}
		for _, s := range x.Risk.Signals {
			out.Signals = append(out.Signals, signal{s.Name, s.Weight, s.Reason})
		}
		for _, m := range x.Decision.Next {
			out.Next = append(out.Next, string(m))
		}
		for _, r := range x.Decision.Reasons {
			out.Reasons = append(out.Reasons, string(r))
		}
		return printJSON(stdout, out)
	}
	_, err = io.WriteString(stdout, x.Summary())
	return err
}
