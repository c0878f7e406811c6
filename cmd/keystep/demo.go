package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	demoapp "github.com/keystep/keystep/cmd/keystep/internal/demo"
	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// The demo's user and client. The password is fixed and printed: the demo
// runs on a fresh temporary data folder unless --data says otherwise.
const (
	demoUsername = "demo"
	demoPassword = "demo-password-123"
	demoClientID = "acme-payroll"
)

// demo runs Keystep and the Acme Payroll app (internal/demo) side by side, with a
// demo user and the app's client, until ctx ends.
func demo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints the usage
	// Deliberately no KEYSTEP_* defaults: the demo must not pick up a real
	// installation's data folder or address.
	var c common
	fs.StringVar(&c.data, "data", "", "data folder (default: a new temporary folder, removed on exit)")
	fs.StringVar(&c.masterKeyFile, "master-key-file", "", "master key file (default DATA/master.key)")
	addr := fs.String("addr", "localhost:8080", "Keystep's listen address")
	rpAddr := fs.String("rp-addr", "localhost:9090", "Acme Payroll's listen address")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{"demo: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo: unexpected argument %q", fs.Arg(0))}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log) // the OP library logs to the default logger

	// Listen first, as serve does: a taken port fails before anything is
	// created, and HOST:0 gets its real port into the URLs.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen --addr: %w", err)
	}
	defer ln.Close()
	rpLn, err := net.Listen("tcp", *rpAddr)
	if err != nil {
		return fmt.Errorf("listen --rp-addr: %w", err)
	}
	defer rpLn.Close()
	issuer, err := localURL("--addr", *addr, ln)
	if err != nil {
		return err
	}
	rpURL, err := localURL("--rp-addr", *rpAddr, rpLn)
	if err != nil {
		return err
	}

	dataNote := "kept"
	throwaway := c.data == ""
	if throwaway {
		dir, err := os.MkdirTemp("", "keystep-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.data, dataNote = dir, "deleted when the demo stops"
	}
	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	set, err := loadConfig("")
	if err != nil {
		return err
	}
	srv, err := idp.NewServer(ctx, idp.Config{
		Issuer: issuer, Store: st, MasterKey: key, Policy: set.policy,
		ScopeMinACR: set.scopeMinACR, Logger: log, ProductName: set.productName, Risk: set.risk,
		// A throwaway server with no sign-in history: the passkey the demo
		// adds in the portal is trusted at once, so that the bank change
		// can ask for it (see PasskeysTrustedAtOnce). Not on a --data
		// folder that outlives the demo.
		PasskeysTrustedAtOnce: throwaway,
		// "Pay an invoice": payments are approved as authorization
		// details, above EUR 1,000 with a passkey in the last 5 minutes.
		Details: details.ExamplePayments(stepup.ACRMultiFactor, stepup.ACRPhishing),
	})
	if err != nil {
		return err
	}
	if err := ensureDemoUser(ctx, st, key); err != nil {
		return fmt.Errorf("demo user: %w", err)
	}
	secret, err := factor.NewToken()
	if err != nil {
		return err
	}
	if err := ensureDemoClient(ctx, st, key, rpURL, secret); err != nil {
		return fmt.Errorf("demo client: %w", err)
	}
	app, err := demoapp.New(demoapp.Config{
		Issuer: issuer, ClientID: demoClientID, ClientSecret: secret, URL: rpURL, Logger: log,
	})
	if err != nil {
		return err
	}

	// The store closes only after Maintain has returned.
	mctx, stopMaintain := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { defer close(maintained); srv.Maintain(mctx, 10*time.Minute) }()
	defer func() { stopMaintain(); <-maintained }()

	// A throwaway local server: its health and metrics on the one port.
	servers := []*http.Server{newHTTPServer(publicWithOps(srv)), newHTTPServer(app)}
	errc := make(chan error, len(servers))
	for i, l := range []net.Listener{ln, rpLn} {
		go func() { errc <- servers[i].Serve(l) }()
	}
	log.Info("keystep demo serving", "issuer", issuer, "app", rpURL, "data", c.data)
	fmt.Fprintf(stdout, `
Keystep demo

  Acme Payroll (the app)     %s   <- open this
  Keystep (the provider)     %s

Sign in to Acme Payroll with
  username  %s
  password  %s   (fixed, for this demo only)

  1. Sign in: the password is one step, enough for the overview.
  2. Open Payslips: they need two steps. The first time, the app sends you
     to your Keystep account to add an authenticator app; after that,
     Keystep asks only for its code.
  3. Change the bank account: that needs a passkey, used in the last
     5 minutes. Add one in your Keystep account the same way.
  4. On the overview, "What if it's stolen?" replays your access token
     without the app's key: the sign-in is pushed (PAR) and the token is
     DPoP-bound, so it is refused.
  5. Pay the invoice under Invoices: Keystep shows the payment and your
     passkey approves exactly that; the token carries it, and the app
     can't stretch it to more money or another supplier. The signed
     approval is in Keystep's audit log; in another terminal:
       go run ./cmd/keystep audit export --data %s --event stepup.transaction

Data: %s (%s). Press Ctrl+C to stop.
`, rpURL, issuer, demoUsername, demoPassword, c.data, c.data, dataNote)

	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log.Info("shutting down")
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown(shutdown))
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, serveErr)
	}
	return errors.Join(errs...)
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
}

// localURL is http://HOST:PORT for a listener. A loopback or unspecified
// host becomes localhost: passkeys need a host name, not an IP address, and
// browsers treat http://localhost as a secure context.
func localURL(flagName, addr string, ln net.Listener) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageError{fmt.Sprintf("%s %q: %v", flagName, addr, err)}
	}
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "localhost"
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// ensureDemoUser creates the demo user unless it exists. An existing one is
// left alone, with whatever factors it has added.
func ensureDemoUser(ctx context.Context, st storage.Store, key []byte) error {
	_, err := st.UserByUsername(ctx, demoUsername)
	if err == nil || !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	hash, err := factor.NewPasswordHasher().Hash(demoPassword)
	if err != nil {
		return err
	}
	id, err := admin.NewUserID()
	if err != nil {
		return err
	}
	now := clock()
	u := storage.User{ID: id, Username: demoUsername, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, u); err != nil {
		return err
	}
	return adminAudit(ctx, st, key, storage.EventAdminUserCreated, u.ID, "", "keystep demo", nil)
}

// ensureDemoClient creates or updates Acme Payroll's client for the app's
// current URL, with a new secret each start: the secret is only ever held
// by this process.
func ensureDemoClient(ctx context.Context, st storage.Store, key []byte, rpURL, secret string) error {
	now := clock()
	want := storage.Client{
		ID: demoClientID, Name: "Acme Payroll", SecretHash: factor.HashToken(secret),
		RedirectURIs: []string{rpURL + "/callback"}, PostLogoutRedirectURIs: []string{rpURL + "/"},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"},
		IDTokenAlg: "ES256", FirstParty: true, RequirePKCE: true,
		// Pushed requests only, and tokens bound to the app's DPoP key.
		RequirePAR: true, DPoPBoundAccessTokens: true,
		// It pays invoices: payment_initiation details (RFC 9396).
		AuthorizationDetailsTypes: []string{details.PaymentInitiation},
		CreatedAt:                 now, UpdatedAt: now,
	}
	old, err := st.ClientByID(ctx, demoClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if err := st.CreateClient(ctx, want); err != nil {
			return err
		}
		return adminAudit(ctx, st, key, storage.EventAdminClientCreated, "", demoClientID, "keystep demo", nil)
	case err != nil:
		return err
	}
	want.CreatedAt = old.CreatedAt
	return st.UpdateClient(ctx, want)
}
