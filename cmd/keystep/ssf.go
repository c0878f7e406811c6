package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// ssf manages the transmitters Keystep receives Shared Signals from:
// keystep ssf receivers add|list|delete.
func ssf(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		return flag.ErrHelp
	}
	if len(args) < 2 || args[0] != "receivers" {
		return usageError{"ssf: want receivers add, list or delete"}
	}
	action, args := args[1], args[2:]
	var spec admin.ReceiverSpec
	var jwksFile string
	fs, c, err := sub("ssf receivers "+action, args, func(fs *flag.FlagSet) {
		if action == "add" {
			fs.StringVar(&spec.Issuer, "issuer", "", "the transmitter's issuer (the iss of its SETs)")
			fs.StringVar(&spec.JWKSURI, "jwks-uri", "", "where its signing keys are published")
			fs.StringVar(&jwksFile, "jwks-file", "", "a file holding its JWKS (instead of --jwks-uri)")
			fs.StringVar(&spec.Audience, "audience", "", "the aud its SETs carry for Keystep (usually Keystep's issuer)")
		}
	})
	if err != nil {
		return err
	}
	switch action {
	case "add":
		if err := noArgs(fs, "ssf receivers add"); err != nil {
			return err
		}
		if jwksFile != "" {
			b, err := os.ReadFile(jwksFile)
			if err != nil {
				return err
			}
			spec.JWKS = strings.TrimSpace(string(b))
		}
	case "delete":
		if fs.NArg() != 1 {
			return usageError{"ssf receivers delete: want one issuer"}
		}
	case "list":
		if err := noArgs(fs, "ssf receivers list"); err != nil {
			return err
		}
	default:
		return usageError{"ssf receivers: unknown action " + action}
	}
	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	adm := newAdmin(st, key, noConfig())
	switch action {
	case "add":
		r, err := adm.AddReceiver(ctx, cliActor(""), spec, clock())
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(stdout, toReceiverJSON(r))
		}
		fmt.Fprintf(stdout, "receiving Shared Signals from %s at /ssf/receive (aud %s)\n", r.Issuer, r.Audience)
		return nil
	case "delete":
		if err := adm.DeleteReceiver(ctx, cliActor(""), fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "no longer receiving from %s\n", fs.Arg(0))
		return nil
	}
	list, err := st.ListReceivers(ctx)
	if err != nil {
		return err
	}
	out := make([]receiverJSON, len(list))
	for i, r := range list {
		out[i] = toReceiverJSON(r)
	}
	if c.json {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUER\tKEYS\tAUDIENCE\tADDED")
	for _, r := range out {
		keys := r.JWKSURI
		if r.JWKS {
			keys = "(JWKS stored)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Issuer, keys, r.Audience, r.CreatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

type receiverJSON struct {
	Issuer    string    `json:"issuer"`
	JWKSURI   string    `json:"jwks_uri,omitempty"`
	JWKS      bool      `json:"jwks_stored"`
	Audience  string    `json:"audience"`
	CreatedAt time.Time `json:"created_at"`
}

func toReceiverJSON(r storage.Receiver) receiverJSON {
	return receiverJSON{Issuer: r.Issuer, JWKSURI: r.JWKSURI, JWKS: r.JWKS != "", Audience: r.Audience, CreatedAt: r.CreatedAt}
}
