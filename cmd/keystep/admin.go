package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/policy"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// sub parses a subcommand's flags (flags may follow positional arguments).
func sub(name string, args []string, setup func(fs *flag.FlagSet)) (*flag.FlagSet, *common, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &common{}
	c.register(fs)
	if setup != nil {
		setup(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err // run prints the usage and exits 0
			}
			return nil, nil, usageError{name + ": " + err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	_ = fs.Parse(pos) // leave positionals in fs.Args()
	return fs, c, nil
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminAudit appends a CLI audit row directly (the demo's setup uses it).
// Changes an operator makes go through admin.Service instead (newAdmin),
// which records the object before and after.
func adminAudit(ctx context.Context, st storage.Store, masterKey []byte, typ storage.EventType, userID, clientID, reason string, details map[string]string) error {
	key, err := storage.NewAuditKey(masterKey)
	if err != nil {
		return err
	}
	_, err = st.AppendAudit(ctx, key, storage.AuditEvent{Time: clock(), Type: typ, UserID: userID, ClientID: clientID, ActorID: "cli", Outcome: "success", Reason: reason, Details: details})
	return err
}

// cliActor is who the CLI's changes are audited as.
func cliActor(reason string) admin.Actor { return admin.Actor{ID: "cli", Reason: reason} }

// newAdmin is the CLI's admin.Service: the same checks and audit rows as the
// console's, with "cli" as the actor. key is the master key (it keys the
// audit chain and seals signing keys).
func newAdmin(st storage.Store, key []byte, set settings) *admin.Service {
	now := clock
	auditKey, _ := storage.NewAuditKey(key) // c.open checked the key; a zero one makes every audit write fail
	a := &admin.Service{
		Store: st, Policies: set.live(st), BuiltIn: idp.AccountClientID, Hasher: factor.NewPasswordHasher(),
		Audit: &web.Auditor{Store: st, Key: auditKey, Log: slog.New(slog.DiscardHandler), Now: now},
	}
	if key != nil {
		a.RotateKeys = func(ctx context.Context, activateIn time.Duration) ([]storage.SigningKey, error) {
			sealer, err := factor.NewSealer(key)
			if err != nil {
				return nil, err
			}
			return idp.RotateKeys(ctx, st, sealer, now(), activateIn)
		}
	}
	return a
}

// ---- users ----

type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email,omitempty"`
	// EmailVerified: the person confirmed Email (or an admin vouched).
	EmailVerified bool      `json:"email_verified"`
	Admin         bool      `json:"admin"`
	Disabled      bool      `json:"disabled"`
	CreatedAt     time.Time `json:"created_at"`
	// Marks left by received Shared Signals.
	PasswordCompromised bool      `json:"password_compromised,omitempty"`
	RiskFloor           string    `json:"risk_floor,omitempty"`
	RiskFloorUntil      time.Time `json:"risk_floor_until,omitzero"`
}

func users(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return usageError{"users: want create, list, show, disable, enable, unlock, reset-factors, signout or confirm-passkey"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	switch action {
	case "create", "list", "show", "disable", "enable", "unlock", "reset-factors", "signout", "confirm-passkey":
	default:
		return usageError{"users: unknown action " + action}
	}
	var username, email, reason, credential string
	var passwordStdin, makeAdmin, emailVerified bool
	fs, c, err := sub("users "+action, args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "username")
		fs.StringVar(&email, "email", "", "email")
		fs.BoolVar(&emailVerified, "email-verified", false, "create: you vouch that --email is the person's (else it is unverified until they confirm it in the portal)")
		fs.StringVar(&reason, "reason", "", "reason (audited; required for reset-factors)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
		fs.BoolVar(&makeAdmin, "admin", false, "make the user an administrator")
		fs.StringVar(&credential, "credential", "", "confirm-passkey: the passkey's ID (see users show)")
	})
	if err != nil {
		return err
	}
	if action == "list" {
		err = noArgs(fs, "users list")
	} else {
		username, err = oneName(fs, "users "+action, username)
	}
	if err != nil {
		return err
	}
	if action != "create" && action != "list" && username == "" {
		return usageError{"users " + action + ": name the user"}
	}
	reason = strings.TrimSpace(reason)
	if action == "reset-factors" && reason == "" {
		return usageError{"users reset-factors: --reason is required (it goes in the audit log)"}
	}
	credential = strings.TrimSpace(credential)
	if action == "confirm-passkey" && credential == "" {
		return usageError{"users confirm-passkey: --credential is required (the passkey's ID, from users show)"}
	}
	if action != "confirm-passkey" && credential != "" {
		return usageError{"users " + action + ": --credential is only for confirm-passkey"}
	}

	// Check everything the command line says before touching the data
	// folder: bad input changes nothing (DESIGN §6).
	var nu admin.NewUser
	if action == "create" {
		if err := admin.ValidateUsername(username); err != nil {
			return usageError{"users create: " + err.Error()}
		}
		if email != "" {
			if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
				return usageError{fmt.Sprintf("users create: --email %q is not an email address", email)}
			}
		} else if emailVerified {
			return usageError{"users create: --email-verified needs --email"}
		}
		if !passwordStdin {
			return usageError{"users create: --password-stdin is required (passwords never go in flags)"}
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if err := factor.ValidatePassword(pw); err != nil {
			return fmt.Errorf("password: %w", err)
		}
		nu = admin.NewUser{Username: username, Email: email, EmailVerified: emailVerified, Password: pw, Admin: makeAdmin}
	}

	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	adm := newAdmin(st, key, noConfig())
	by := cliActor(reason)
	now := clock()
	switch action {
	case "create":
		u, err := adm.CreateUser(ctx, by, nu, now)
		if errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("user %q already exists", username)
		}
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(stdout, toUserJSON(u))
		}
		fmt.Fprintf(stdout, "created user %s (id %s)\n", username, u.ID)
		return nil
	case "list":
		list, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		out := make([]userJSON, 0, len(list))
		for _, u := range list {
			out = append(out, toUserJSON(u))
		}
		if c.json {
			return printJSON(stdout, out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tID\tADMIN\tDISABLED\tCREATED")
		for _, u := range out {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", u.Username, u.ID, u.Admin, u.Disabled, u.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	}

	u, err := st.UserByUsername(ctx, username)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no user %q", username)
	}
	if err != nil {
		return err
	}
	switch action {
	case "show":
		return showUser(ctx, st, adm, u, c.json, stdout)
	case "disable", "enable":
		_, err = adm.SetDisabled(ctx, by, u.ID, action == "disable", now)
	case "unlock":
		err = adm.Unlock(ctx, by, u.ID, now)
	case "reset-factors":
		err = adm.ResetFactors(ctx, by, u.ID, now)
	case "signout":
		_, err = adm.SignOut(ctx, by, u.ID, "", now)
	case "confirm-passkey":
		// DESIGN §3.3: a passkey added from a session below phr counts as
		// mfa until it proves itself; an operator may vouch for it now.
		_, err = adm.ConfirmPasskey(ctx, by, u.ID, credential, now)
		switch {
		case errors.Is(err, admin.ErrNoSuchPasskey):
			return fmt.Errorf("%s has no passkey or security key with ID %q (see keystep users show %s)", u.Username, credential, u.Username)
		case errors.Is(err, admin.ErrAlreadyTrusted):
			err = nil
			if !c.json {
				fmt.Fprintf(stdout, "%s: passkey %s already counts as phishing-resistant\n", u.Username, credential)
				return nil
			}
		}
	}
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, map[string]string{"user": u.Username, "action": action, "result": "done"})
	}
	fmt.Fprintf(stdout, "%s: %s done\n", u.Username, action)
	return nil
}

// showUser prints what the console's user page shows: the account, its
// factors (names, never secrets), sessions and recent activity.
func showUser(ctx context.Context, st storage.Store, adm *admin.Service, u storage.User, asJSON bool, stdout io.Writer) error {
	now := clock()
	type factorJSON struct {
		ID         string             `json:"id"`
		Kind       storage.FactorKind `json:"kind"`
		Name       string             `json:"name"`
		CreatedAt  time.Time          `json:"created_at"`
		LastUsedAt time.Time          `json:"last_used_at,omitzero"`
		TrustedAt  time.Time          `json:"trusted_at,omitzero"` // WebAuthn: phishing-resistant since (DESIGN §3.3)
	}
	type sessionJSON struct {
		IP        string    `json:"ip"`
		UserAgent string    `json:"user_agent"`
		CreatedAt time.Time `json:"created_at"`
		LastSeen  time.Time `json:"last_seen"`
	}
	out := struct {
		userJSON
		Lock          admin.Lock        `json:"lock"`
		Factors       []factorJSON      `json:"factors"`
		RecoveryCodes int               `json:"recovery_codes"`
		Sessions      []sessionJSON     `json:"sessions"`
		Activity      []admin.AuditJSON `json:"activity"`
	}{userJSON: toUserJSON(u), Factors: []factorJSON{}, Sessions: []sessionJSON{}, Activity: []admin.AuditJSON{}}
	var err error
	if out.Lock, err = adm.LockState(ctx, u, now); err != nil {
		return err
	}
	fs, err := st.ListFactors(ctx, u.ID)
	if err != nil {
		return err
	}
	for _, f := range fs {
		out.Factors = append(out.Factors, factorJSON{f.ID, f.Kind, f.Name, f.CreatedAt, f.LastUsedAt, f.TrustedAt})
	}
	if out.RecoveryCodes, err = st.CountRecoveryCodes(ctx, u.ID); err != nil {
		return err
	}
	ss, err := st.ListUserSessions(ctx, u.ID, now)
	if err != nil {
		return err
	}
	for _, s := range ss {
		out.Sessions = append(out.Sessions, sessionJSON{s.IP, s.UserAgent, s.CreatedAt, s.LastSeen})
	}
	events, err := st.ListAudit(ctx, storage.AuditFilter{UserID: u.ID, Newest: true, Limit: 20})
	if err != nil {
		return err
	}
	for _, e := range events {
		out.Activity = append(out.Activity, admin.AuditJSONOf(e))
	}
	if asJSON {
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s (id %s)\nemail: %s%s\nadmin: %v\ndisabled: %v\ncreated: %s\n", u.Username, u.ID, orNone(u.Email), verifiedNote(u), u.Admin, u.Disabled, u.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(stdout, "failed attempts: %d", out.Lock.Failures)
	if !out.Lock.BlockedUntil.IsZero() {
		fmt.Fprintf(stdout, ", locked until %s", out.Lock.BlockedUntil.Format(time.RFC3339))
	}
	for _, f := range out.Lock.LockedFactors {
		fmt.Fprintf(stdout, ", %s locked after 100 wrong codes (unlock clears it)", f)
	}
	// What received Shared Signals left on the account.
	if u.PasswordCompromised {
		fmt.Fprint(stdout, "\npassword: reported compromised; refused until changed after a second factor")
	}
	if u.RiskFloor != "" && now.Before(u.RiskFloorUntil) {
		fmt.Fprintf(stdout, "\nrisk floor: %s until %s (%s)", u.RiskFloor, u.RiskFloorUntil.Format(time.RFC3339), printable(u.RiskFloorReason))
	}
	fmt.Fprintf(stdout, "\n\nfactors (%d), recovery codes left: %d\n", len(out.Factors), out.RecoveryCodes)
	for _, f := range out.Factors {
		trust := ""
		if f.Kind == storage.FactorWebAuthn && f.TrustedAt.IsZero() {
			trust = ", not yet phishing-resistant: keystep users confirm-passkey " + u.Username + " --credential " + f.ID
		}
		fmt.Fprintf(stdout, "  %-9s %s (id %s, added %s, last used %s%s)\n", f.Kind, printable(f.Name), f.ID, f.CreatedAt.Format(time.RFC3339), fmtOpt(f.LastUsedAt), trust)
	}
	fmt.Fprintf(stdout, "\nsessions (%d)\n", len(out.Sessions))
	for _, s := range out.Sessions {
		fmt.Fprintf(stdout, "  %s since %s, last seen %s  %s\n", s.IP, s.CreatedAt.Format(time.RFC3339), s.LastSeen.Format(time.RFC3339), printable(s.UserAgent))
	}
	fmt.Fprintf(stdout, "\nrecent activity\n")
	for _, e := range out.Activity {
		fmt.Fprintf(stdout, "  %s  %-28s %-8s %s %s\n", e.Time.Format(time.RFC3339), e.Type, printable(e.Outcome), e.ClientID, printable(e.Reason))
	}
	return nil
}

// printable is stored text as the CLI's text output shows it: a rune that
// is not printable (a control character such as ESC or a newline, a bidi
// override) and a byte that is not UTF-8 are written as Go escapes (\x1b,
// \n, \u202e, \xff), so a reason or name written through the admin API
// or a form cannot rewrite the operator's terminal or forge lines.
// Every audit reason and detail, and every name or reason a user or
// client chose, goes through it in text output.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
		}
		if strconv.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// oneName is the single name a command acts on: the flag or one positional
// argument, not both. A second name is an error rather than silently ignored.
func oneName(fs *flag.FlagSet, cmd, flagValue string) (string, error) {
	switch {
	case fs.NArg() == 0:
		return flagValue, nil
	case fs.NArg() == 1 && flagValue == "":
		return fs.Arg(0), nil
	default:
		return "", usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(fs.NArg()-1))}
	}
}

func noArgs(fs *flag.FlagSet, cmd string) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(0))}
	}
	return nil
}

func toUserJSON(u storage.User) userJSON {
	return userJSON{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Admin: u.Admin, Disabled: u.Disabled, CreatedAt: u.CreatedAt,
		PasswordCompromised: u.PasswordCompromised, RiskFloor: u.RiskFloor, RiskFloorUntil: u.RiskFloorUntil}
}

// ---- clients ----

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type clientJSON struct {
	ID                     string   `json:"id"`
	Name                   string   `json:"name,omitempty"`
	Secret                 string   `json:"secret,omitempty"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	Public                 bool     `json:"public"`
	GrantTypes             []string `json:"grant_types"`
	IDTokenAlg             string   `json:"id_token_signed_response_alg"`
	MinACR                 string   `json:"min_acr,omitempty"`
	Strict                 bool     `json:"strict"`
	FirstParty             bool     `json:"first_party"`
	RequirePAR             bool     `json:"require_pushed_authorization_requests,omitempty"`
	DPoPBoundAccessTokens  bool     `json:"dpop_bound_access_tokens,omitempty"`
	Profile                string   `json:"profile,omitempty"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	// BackchannelLogoutSessionRequired: logout tokens carry sid.
	BackchannelLogoutSessionRequired bool `json:"backchannel_logout_session_required,omitempty"`
	// AuthorizationDetailsTypes: the RFC 9396 types the app may request.
	AuthorizationDetailsTypes []string `json:"authorization_details_types,omitempty"`
	// AdminAPI: "read" or "write" when the app may call /admin/api.
	AdminAPI string `json:"admin_api,omitempty"`
}

// clientFlags are the settings flags of clients create and clients update.
type clientFlags struct {
	name, minACR, alg, grants, authMethod, format, jwksFile string
	reuseInterval, profile, backchannelURI                  string
	redirects, postLogout                                   listFlag
	public, native, strict, firstParty, pkce                bool
	requirePAR, dpop, backchannelSID                        bool
	detailsTypes, adminAPI                                  string
	rateLimit                                               int
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "display name shown on sign-in pages")
	fs.Var(&f.redirects, "redirect-uri", "redirect URI (repeatable; on update, replaces the list)")
	fs.Var(&f.postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable; on update, replaces the list)")
	fs.BoolVar(&f.public, "public", false, "public client (no secret, PKCE required)")
	fs.BoolVar(&f.native, "native", false, "native app (RFC 8252 loopback redirect URIs)")
	fs.StringVar(&f.minACR, "min-acr", "", "minimum acr for every sign-in")
	fs.BoolVar(&f.strict, "strict", false, "treat requested acr values as essential (RFC 9470 §5)")
	fs.BoolVar(&f.firstParty, "first-party", false, "skip the consent page")
	fs.BoolVar(&f.pkce, "require-pkce", false, "require PKCE (always on for public clients)")
	fs.StringVar(&f.alg, "id-token-alg", "", "ID token signing algorithm: RS256 (the default; ES256 with --profile fapi2), ES256 (smaller and ~20x cheaper; use it when the RP library supports it) or EdDSA")
	fs.StringVar(&f.grants, "grant", "authorization_code,refresh_token", "grant types, comma-separated")
	fs.StringVar(&f.authMethod, "auth-method", "", "client_secret_basic (default), client_secret_post or private_key_jwt")
	fs.StringVar(&f.format, "access-token-format", "jwt", "jwt or opaque")
	fs.IntVar(&f.rateLimit, "rate-limit", 0, "token-endpoint requests a second once authenticated (burst: two seconds' worth); 0 is the server's default (rate_limits.client)")
	fs.StringVar(&f.jwksFile, "jwks-file", "", "the client's public keys (JWK Set): it authenticates with private_key_jwt instead of a secret")
	fs.StringVar(&f.reuseInterval, "refresh-reuse-interval", "", "how long a rotated refresh token may be presented again for the same successor (parallel refreshes, lost responses); empty: 10s, 0s: none, at most 1m")
	fs.BoolVar(&f.requirePAR, "require-par", false, "accept only pushed authorization requests (RFC 9126, require_pushed_authorization_requests)")
	fs.BoolVar(&f.dpop, "dpop", false, "require DPoP: tokens are bound to the app's key (RFC 9449, dpop_bound_access_tokens)")
	fs.StringVar(&f.profile, "profile", "", "security profile: fapi2 (FAPI 2.0: implies --require-par, --dpop and PKCE; needs --jwks-file and ES256 or EdDSA) or none")
	fs.StringVar(&f.backchannelURI, "backchannel-logout-uri", "", "where logout tokens are sent (OIDC Back-Channel Logout): https, or http on localhost; empty: none")
	fs.BoolVar(&f.backchannelSID, "backchannel-logout-session-required", false, "logout tokens carry the session ID (sid)")
	fs.StringVar(&f.adminAPI, "admin-api", "", "grant the app the admin API (/admin/api) with its client_credentials tokens: read (scope keystep:admin:read) or write (also keystep:admin); none or empty: no access")
	fs.StringVar(&f.detailsTypes, "authorization-details-types", "", "authorization_details types the app may request (RFC 9396), comma-separated: payment_initiation,account_change; each must be in the config file's authorization_details_types; empty: none")
}

// apply sets on s the flags that were given (all of them for create).
func (f *clientFlags) apply(fs *flag.FlagSet, s *admin.ClientSpec, all bool) []string {
	var problems []string
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	given := func(name string) bool { return all || set[name] }
	if given("name") {
		s.Name = f.name
	}
	if given("redirect-uri") {
		s.RedirectURIs = f.redirects
	}
	if given("post-logout-redirect-uri") {
		s.PostLogoutRedirectURIs = f.postLogout
	}
	if given("public") {
		s.Public = f.public
		if set["public"] {
			s.AuthMethod = "" // the type decides the method unless --auth-method says
		}
	}
	if given("native") {
		s.Native = f.native
	}
	if given("min-acr") {
		s.MinACR = f.minACR
	}
	if given("strict") {
		s.Strict = f.strict
	}
	if given("first-party") {
		s.FirstParty = f.firstParty
	}
	if given("require-pkce") {
		s.RequirePKCE = f.pkce
	}
	if given("rate-limit") {
		s.RateLimit = f.rateLimit
	}
	if given("refresh-reuse-interval") {
		s.RefreshReuseInterval = f.reuseInterval
	}
	if given("require-par") {
		s.RequirePAR = f.requirePAR
	}
	if given("dpop") {
		s.DPoPBoundAccessTokens = f.dpop
	}
	if given("profile") {
		s.Profile = f.profile
	}
	if given("backchannel-logout-uri") {
		s.BackchannelLogoutURI = f.backchannelURI
	}
	if given("backchannel-logout-session-required") {
		s.BackchannelLogoutSessionRequired = f.backchannelSID
	}
	if given("admin-api") {
		s.AdminAPI = f.adminAPI
		if s.AdminAPI == "none" {
			s.AdminAPI = ""
		}
	}
	if given("authorization-details-types") {
		s.AuthorizationDetailsTypes = strings.Split(f.detailsTypes, ",")
	}
	if given("id-token-alg") {
		s.IDTokenAlg = f.alg
	}
	if given("grant") {
		s.GrantTypes = strings.Split(f.grants, ",")
	}
	if given("access-token-format") {
		s.AccessTokenFormat = f.format
	}
	if given("auth-method") {
		s.AuthMethod = f.authMethod
	}
	if f.jwksFile != "" {
		raw, err := os.ReadFile(f.jwksFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("--jwks-file: %v", err))
		} else {
			s.JWKS = raw
			if !set["auth-method"] {
				s.AuthMethod = "private_key_jwt"
			}
		}
	} else if set["auth-method"] && f.authMethod != "private_key_jwt" {
		s.JWKS = nil
	}
	if s.Public && !set["auth-method"] {
		s.AuthMethod = "none"
	}
	return problems
}

func clients(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return usageError{"clients: want create, list, show, update, rotate-secret or delete"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	switch action {
	case "create", "list", "show", "update", "rotate-secret", "delete":
	default:
		return usageError{"clients: unknown action " + action}
	}
	var id, configFile string
	var cf clientFlags
	fs, c, err := sub("clients "+action, args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "client ID")
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file whose levels --min-acr must name")
		cf.register(fs)
	})
	if err != nil {
		return err
	}
	if action == "list" {
		err = noArgs(fs, "clients list")
	} else {
		id, err = oneName(fs, "clients "+action, id)
	}
	if err != nil {
		return err
	}
	if action != "create" && action != "list" && id == "" {
		return usageError{"clients " + action + ": name the client"}
	}
	if action != "create" && action != "list" && action != "show" && id == idp.AccountClientID {
		return errors.New("the account portal's client is built in and cannot be changed or deleted")
	}
	// The levels a minimum acr must name.
	set := settings{policy: stepup.DefaultPolicy()}
	if action == "create" || action == "update" {
		if set, err = loadConfig(configFile); err != nil {
			return err
		}
	}

	// Check everything the command line says before touching the data
	// folder: bad input changes nothing (DESIGN §6).
	var spec admin.ClientSpec
	if action == "create" {
		spec = admin.ClientSpec{ID: id}
		problems := cf.apply(fs, &spec, true)
		for _, p := range append(admin.ValidateClient(spec, set.policy, idp.AccountClientID), admin.RegisteredDetailsTypes(spec, set.details)...) {
			problems = append(problems, p.Message)
		}
		if len(problems) > 0 {
			return usageError{"clients create:\n" + strings.Join(problems, "\n")}
		}
	}

	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	adm := newAdmin(st, key, set)
	by := cliActor("")
	now := clock()
	switch action {
	case "create":
		secret, err := adm.CreateClient(ctx, by, spec, now)
		if errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("client %q already exists", id)
		}
		if err != nil {
			return err
		}
		cl, err := st.ClientByID(ctx, id)
		if err != nil {
			return err
		}
		out := toClientJSON(cl)
		out.Secret = secret
		if c.json {
			return printJSON(stdout, out)
		}
		fmt.Fprintf(stdout, "created client %s\n", id)
		if secret != "" {
			fmt.Fprintf(stdout, "client secret (shown once, stored hashed):\n  %s\n", secret)
		}
		if cl.IDTokenAlg == "RS256" {
			fmt.Fprintln(stdout, "tip: if the app's OIDC library supports ES256, --id-token-alg ES256 makes ID tokens smaller and about 20x cheaper to sign")
		}
		return nil
	case "list":
		list, err := st.ListClients(ctx)
		if err != nil {
			return err
		}
		out := make([]clientJSON, 0, len(list))
		for _, cl := range list {
			out = append(out, toClientJSON(cl))
		}
		if c.json {
			return printJSON(stdout, out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPUBLIC\tMIN ACR\tREDIRECT URIS")
		for _, cl := range out {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", cl.ID, cl.Name, cl.Public, cl.MinACR, strings.Join(cl.RedirectURIs, " "))
		}
		return tw.Flush()
	}

	cl, err := st.ClientByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no client %q", id)
	}
	if err != nil {
		return err
	}
	switch action {
	case "show":
		out := struct {
			admin.ClientSpec
			HasSecret bool      `json:"has_secret"`
			CreatedAt time.Time `json:"created_at"`
			UpdatedAt time.Time `json:"updated_at"`
		}{admin.SpecOf(cl), cl.SecretHash != "", cl.CreatedAt, cl.UpdatedAt}
		if c.json {
			return printJSON(stdout, out)
		}
		j, err := json.Marshal(out)
		if err != nil {
			return err
		}
		b, err := policy.YAML(j)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	case "update":
		spec := admin.SpecOf(cl)
		problems := cf.apply(fs, &spec, false)
		if len(problems) > 0 {
			return usageError{"clients update:\n" + strings.Join(problems, "\n")}
		}
		changes, secret, err := adm.UpdateClient(ctx, by, spec, now)
		var inv *admin.InvalidError
		if errors.As(err, &inv) {
			return usageError{"clients update:\n" + inv.Error()}
		}
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(stdout, map[string]any{"client": id, "changes": nonNil(changes), "secret": secret})
		}
		if len(changes) == 0 {
			fmt.Fprintf(stdout, "client %s: no changes\n", id)
			return nil
		}
		fmt.Fprintf(stdout, "updated client %s:\n  %s\n", id, strings.Join(changes, "\n  "))
		if secret != "" {
			fmt.Fprintf(stdout, "client secret (shown once, stored hashed):\n  %s\n", secret)
		}
		return nil
	case "rotate-secret":
		secret, err := adm.RotateClientSecret(ctx, by, id, now)
		if err != nil {
			return err
		}
		if c.json {
			return printJSON(stdout, map[string]string{"client": id, "secret": secret})
		}
		fmt.Fprintf(stdout, "new secret for %s (shown once, stored hashed; the old one no longer works):\n  %s\n", id, secret)
		return nil
	}

	// delete
	if err := adm.DeleteClient(ctx, by, id); err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, map[string]string{"client": id, "result": "deleted"})
	}
	fmt.Fprintf(stdout, "deleted client %s\n", id)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toClientJSON(c storage.Client) clientJSON {
	alg := c.IDTokenAlg
	if alg == "" {
		alg = "RS256"
	}
	return clientJSON{ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		Public: c.Public, GrantTypes: c.GrantTypes, IDTokenAlg: alg, MinACR: c.MinACR, Strict: c.Strict, FirstParty: c.FirstParty,
		RequirePAR: c.RequirePAR, DPoPBoundAccessTokens: c.DPoPBoundAccessTokens, Profile: c.Profile,
		BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
		AuthorizationDetailsTypes: c.AuthorizationDetailsTypes, AdminAPI: c.AdminAPI}
}

// ---- keys ----

func keys(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return usageError{"keys: want rotate or list"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	if action != "rotate" && action != "list" {
		return usageError{"keys: unknown action " + action}
	}
	var activateIn time.Duration
	fs, c, err := sub("keys "+action, args[1:], func(fs *flag.FlagSet) {
		fs.DurationVar(&activateIn, "activate-in", 0, "publish the new keys now, start signing with them after this long")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "keys "+action); err != nil {
		return err
	}
	if activateIn < 0 {
		return usageError{fmt.Sprintf("keys rotate: --activate-in %s is negative", activateIn)}
	}
	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	type keyJSON struct {
		ID        string    `json:"kid"`
		Algorithm string    `json:"alg"`
		CreatedAt time.Time `json:"created_at"`
		ActiveAt  time.Time `json:"active_at"`
		RetiredAt time.Time `json:"retired_at,omitzero"`
		ExpiresAt time.Time `json:"expires_at,omitzero"`
	}
	conv := func(k storage.SigningKey) keyJSON {
		return keyJSON{k.ID, k.Algorithm, k.CreatedAt, k.ActiveAt, k.RetiredAt, k.ExpiresAt}
	}
	switch action {
	case "rotate":
		added, err := newAdmin(st, key, noConfig()).RotateSigningKeys(ctx, cliActor(""), activateIn, clock())
		if err != nil {
			return err
		}
		out := make([]keyJSON, len(added))
		for i, k := range added {
			out[i] = conv(k)
		}
		if c.json {
			return printJSON(stdout, out)
		}
		for _, k := range out {
			fmt.Fprintf(stdout, "new %s key %s, signing from %s; old keys stay published for 24 h after that\n", k.Algorithm, k.ID, k.ActiveAt.Format(time.RFC3339))
		}
		return nil
	case "list":
		list, err := st.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		out := make([]keyJSON, len(list))
		for i, k := range list {
			out[i] = conv(k)
		}
		if c.json {
			return printJSON(stdout, out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KID\tALG\tACTIVE FROM\tRETIRED\tLEAVES JWKS")
		for _, k := range out {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.ActiveAt.Format(time.RFC3339), fmtOpt(k.RetiredAt), fmtOpt(k.ExpiresAt))
		}
		return tw.Flush()
	}
	return usageError{"keys: unknown action " + action}
}

func fmtOpt(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// ---- audit ----

func audit(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return usageError{"audit: want verify, checkpoint or export"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	if action != "verify" && action != "export" && action != "checkpoint" {
		return usageError{"audit: unknown action " + action}
	}
	var since, until, user, event, checkpoint, issuer string
	var transaction int64
	f := storage.AuditFilter{}
	fs, c, err := sub("audit "+action, args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&checkpoint, "checkpoint", "", "verify: a signed checkpoint, or a file whose last checkpoint counts, that the log must still reach")
		fs.Int64Var(&transaction, "transaction", 0, "verify: the approval recorded in this stepup.transaction row (its seq, as export shows it)")
		fs.StringVar(&issuer, "issuer", env("ISSUER", ""), "verify --transaction: the server's issuer URL (the passkey's origin and RP ID)")
		fs.StringVar(&since, "since", "", "export events at or after this time (RFC 3339)")
		fs.StringVar(&until, "until", "", "export events before this time (RFC 3339)")
		fs.StringVar(&user, "user", "", "only events about this user (username or ID)")
		fs.StringVar(&f.ClientID, "client", "", "only events of this client")
		fs.StringVar(&event, "event", "", "only events of this type, such as admin.client_updated")
		fs.StringVar(&f.Outcome, "outcome", "", "only events with this outcome: success, failure, denied or challenged")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "audit "+action); err != nil {
		return err
	}
	f.Type = storage.EventType(event)
	for _, tf := range []struct {
		name, value string
		to          *time.Time
	}{{"--since", since, &f.Since}, {"--until", until, &f.Until}} {
		if tf.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, tf.value)
		if err != nil {
			return usageError{"audit " + action + ": " + tf.name + ": " + err.Error()}
		}
		*tf.to = t
	}
	if checkpoint != "" && action != "verify" {
		return usageError{"audit " + action + ": --checkpoint is for audit verify"}
	}
	if (transaction != 0 || issuer != "" && os.Getenv("KEYSTEP_ISSUER") == "") && action != "verify" {
		return usageError{"audit " + action + ": --transaction and --issuer are for audit verify"}
	}
	if transaction < 0 || transaction != 0 && checkpoint != "" {
		return usageError{"audit verify: --transaction takes a row's seq (a positive number), without --checkpoint"}
	}
	st, key, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch action {
	case "verify":
		if transaction != 0 {
			return auditVerifyTransaction(ctx, st, key, transaction, issuer, c.json, stdout)
		}
		return auditVerify(ctx, st, key, checkpoint, c.json, stdout)
	case "checkpoint":
		return auditCheckpoint(ctx, st, key, c.json, stdout)
	case "export":
		if user != "" {
			// A username, else an ID (or the ID of a user since deleted).
			if u, err := st.UserByUsername(ctx, user); err == nil {
				user = u.ID
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			f.UserID = user
		}
		events, err := st.ListAudit(ctx, f)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		for _, e := range events {
			if err := enc.Encode(admin.AuditJSONOf(e)); err != nil {
				return err
			}
		}
		return nil
	}
	return usageError{"audit: unknown action " + action}
}

// auditJSON is one exported audit row (admin.AuditJSON: the console's
// export writes the same lines).
type auditJSON = admin.AuditJSON
