package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login"
	"github.com/keystep/keystep/login/factor"
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

func adminAudit(ctx context.Context, st storage.Store, typ, userID, clientID, reason string, details map[string]string) error {
	_, err := st.AppendAudit(ctx, storage.AuditEvent{Time: time.Now().UTC(), Type: typ, UserID: userID, ClientID: clientID, ActorID: "cli", Outcome: "success", Reason: reason, Details: details})
	return err
}

// ---- users ----

type userJSON struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email,omitempty"`
	Admin     bool      `json:"admin"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func users(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return usageError{"users: want create, list, disable, enable, unlock or reset-factors"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	switch action {
	case "create", "list", "disable", "enable", "unlock", "reset-factors":
	default:
		return usageError{"users: unknown action " + action}
	}
	var username, email, reason string
	var passwordStdin, admin bool
	fs, c, err := sub("users "+action, args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "username")
		fs.StringVar(&email, "email", "", "email")
		fs.StringVar(&reason, "reason", "", "reason (audited)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
		fs.BoolVar(&admin, "admin", false, "make the user an administrator")
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

	// Check everything the command line says before touching the data
	// folder: bad input changes nothing (DESIGN §6).
	var u storage.User
	if action == "create" {
		if err := login.ValidateUsername(username); err != nil {
			return usageError{"users create: " + err.Error()}
		}
		if email != "" {
			if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
				return usageError{fmt.Sprintf("users create: --email %q is not an email address", email)}
			}
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
		hash, err := factor.NewPasswordHasher().Hash(pw)
		if err != nil {
			return err
		}
		id, err := login.NewUserID()
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		u = storage.User{ID: id, Username: username, Email: email, PasswordHash: hash, Admin: admin, CreatedAt: now, UpdatedAt: now}
	}

	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch action {
	case "create":
		if err := st.CreateUser(ctx, u); err != nil {
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("user %q already exists", username)
			}
			return err
		}
		if err := adminAudit(ctx, st, "admin.user_created", u.ID, "", reason, nil); err != nil {
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

	// disable, enable, unlock, reset-factors
	u, err = st.UserByUsername(ctx, username)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no user %q", username)
	}
	if err != nil {
		return err
	}
	switch action {
	case "disable", "enable":
		u.Disabled = action == "disable"
		u.UpdatedAt = time.Now().UTC()
		if err := st.UpdateUser(ctx, u); err != nil {
			return err
		}
		if u.Disabled {
			if _, err := st.DeleteUserSessions(ctx, u.ID, ""); err != nil {
				return err
			}
			if err := st.RevokeUserClientTokens(ctx, u.ID, ""); err != nil {
				return err
			}
		}
	case "unlock":
		// Clears the account's password and factor throttles (the
		// per-account+IP counters of other addresses expire by themselves).
		if err := login.Unlock(ctx, st, u.Username, u.ID); err != nil {
			return err
		}
	case "reset-factors":
		if err := st.DeleteUserFactors(ctx, u.ID); err != nil {
			return err
		}
		if _, err := st.DeleteUserSessions(ctx, u.ID, ""); err != nil {
			return err
		}
	}
	if err := adminAudit(ctx, st, "admin.user_"+strings.ReplaceAll(action, "-", "_"), u.ID, "", reason, nil); err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, map[string]string{"user": u.Username, "action": action, "result": "done"})
	}
	fmt.Fprintf(stdout, "%s: %s done\n", u.Username, action)
	return nil
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
	return userJSON{ID: u.ID, Username: u.Username, Email: u.Email, Admin: u.Admin, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
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
}

// validateRedirectURI: absolute, no fragment, https except loopback hosts
// (RFC 6749 §3.1.2, RFC 8252 §7.3).
func validateRedirectURI(s string, native bool) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" && u.Scheme != "" && !native {
		return fmt.Errorf("redirect URI %q must be absolute", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("redirect URI %q must not have a fragment", s)
	}
	h := u.Hostname()
	loopback := h == "localhost" || h == "127.0.0.1" || h == "[::1]" || h == "::1"
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback:
	case native && u.Scheme != "http" && strings.Contains(u.Scheme, "."):
		// RFC 8252 §7.1: private-use schemes in reverse-domain form.
	default:
		return fmt.Errorf("redirect URI %q must use https (http only for localhost)", s)
	}
	return nil
}

func clients(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return usageError{"clients: want create, list or delete"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	switch action {
	case "create", "list", "delete":
	default:
		return usageError{"clients: unknown action " + action}
	}
	var id, name, minACR, alg, grants, configFile, jwksFile string
	var redirects, postLogout listFlag
	var public, native, strict, firstParty bool
	fs, c, err := sub("clients "+action, args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "client ID")
		fs.StringVar(&name, "name", "", "display name shown on sign-in pages")
		fs.Var(&redirects, "redirect-uri", "redirect URI (repeatable)")
		fs.Var(&postLogout, "post-logout-redirect-uri", "post-logout redirect URI (repeatable)")
		fs.BoolVar(&public, "public", false, "public client (no secret, PKCE required)")
		fs.BoolVar(&native, "native", false, "native app (RFC 8252 loopback redirect URIs)")
		fs.StringVar(&minACR, "min-acr", "", "minimum acr for every sign-in")
		fs.BoolVar(&strict, "strict", false, "treat requested acr values as essential (RFC 9470 §5)")
		fs.BoolVar(&firstParty, "first-party", false, "skip the consent page")
		fs.StringVar(&alg, "id-token-alg", "RS256", "ID token signing algorithm: RS256, ES256 (smaller and ~20x cheaper; use it when the RP library supports it) or EdDSA")
		fs.StringVar(&grants, "grant", "authorization_code,refresh_token", "grant types, comma-separated")
		fs.StringVar(&configFile, "config", env("CONFIG", ""), "config file whose levels --min-acr must name")
		fs.StringVar(&jwksFile, "jwks-file", "", "the client's public keys (JWK Set): it authenticates with private_key_jwt instead of a secret")
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

	// Check everything the command line says before touching the data
	// folder: bad input changes nothing (DESIGN §6).
	var cl storage.Client
	var secret string
	switch action {
	case "create":
		var errs []error
		switch {
		case id == "" || len(id) > 128 || strings.ContainsAny(id, " :\t\n"):
			errs = append(errs, errors.New("--id is required (at most 128 characters, no spaces or ':')"))
		case id == idp.AccountClientID:
			errs = append(errs, fmt.Errorf("--id %q is the account portal's built-in client", id))
		}
		grantList := strings.Split(grants, ",")
		for _, g := range grantList {
			switch g {
			case "authorization_code", "refresh_token", "client_credentials":
			default:
				errs = append(errs, fmt.Errorf("unknown grant %q", g))
			}
		}
		if slices.Contains(grantList, "authorization_code") && len(redirects) == 0 {
			errs = append(errs, errors.New("--redirect-uri is required for authorization_code"))
		}
		for _, r := range redirects {
			if err := validateRedirectURI(r, native); err != nil {
				errs = append(errs, err)
			}
		}
		for _, r := range postLogout {
			if err := validateRedirectURI(r, native); err != nil {
				errs = append(errs, err)
			}
		}
		switch alg {
		case "RS256", "ES256", "EdDSA":
		default:
			errs = append(errs, fmt.Errorf("--id-token-alg %q: want RS256, ES256 or EdDSA", alg))
		}
		if public && slices.Contains(grantList, "client_credentials") {
			errs = append(errs, errors.New("public clients cannot use client_credentials"))
		}
		if minACR != "" {
			// An unknown minimum would fail every sign-in with this client.
			set, err := loadConfig(configFile)
			if err != nil {
				return err
			}
			if _, _, ok := set.policy.Lookup(minACR); !ok {
				errs = append(errs, fmt.Errorf("--min-acr %q is not a configured level (%s)", minACR, strings.Join(set.policy.Values(), ", ")))
			}
		}
		var jwks string
		if jwksFile != "" {
			if public {
				errs = append(errs, errors.New("--jwks-file and --public exclude each other"))
			}
			raw, err := os.ReadFile(jwksFile)
			var set jose.JSONWebKeySet
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("--jwks-file: %w", err))
			case json.Unmarshal(raw, &set) != nil || len(set.Keys) == 0:
				errs = append(errs, fmt.Errorf("--jwks-file %s: want a JSON Web Key Set with at least one key", jwksFile))
			default:
				for i, k := range set.Keys {
					if !k.Valid() || !k.IsPublic() {
						errs = append(errs, fmt.Errorf("--jwks-file %s: key %d is not a valid public key", jwksFile, i))
					}
				}
				jwks = string(raw)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return usageError{"clients create:\n" + err.Error()}
		}
		now := time.Now().UTC()
		cl = storage.Client{
			ID: id, Name: name, RedirectURIs: redirects, PostLogoutRedirectURIs: postLogout,
			Public: public, Native: native, GrantTypes: grantList, IDTokenAlg: alg,
			AccessTokenFormat: "jwt", MinACR: minACR, Strict: strict, FirstParty: firstParty,
			RequirePKCE: public, CreatedAt: now, UpdatedAt: now,
		}
		switch {
		case public:
			cl.AuthMethod = "none"
		case jwks != "":
			// RFC 7523 §2.2: the client signs an assertion; no secret exists.
			cl.AuthMethod, cl.JWKS = "private_key_jwt", jwks
		default:
			cl.AuthMethod = "client_secret_basic"
			if secret, err = factor.NewToken(); err != nil {
				return err
			}
			cl.SecretHash = factor.HashToken(secret)
		}
	case "delete":
		if id == "" {
			return usageError{"clients delete: name the client"}
		}
		if id == idp.AccountClientID {
			return errors.New("the account portal's client is built in and cannot be deleted")
		}
	}

	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch action {
	case "create":
		if err := st.CreateClient(ctx, cl); err != nil {
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("client %q already exists", id)
			}
			return err
		}
		if err := adminAudit(ctx, st, "admin.client_created", "", id, "", nil); err != nil {
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
		if alg == "RS256" {
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

	// delete
	if _, err := st.ClientByID(ctx, id); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no client %q", id)
	} else if err != nil {
		return err
	}
	if err := forgetClient(ctx, st, id); err != nil {
		return err
	}
	if err := st.DeleteClient(ctx, id); err != nil {
		return err
	}
	if err := adminAudit(ctx, st, "admin.client_deleted", "", id, "", nil); err != nil {
		return err
	}
	if c.json {
		return printJSON(stdout, map[string]string{"client": id, "result": "deleted"})
	}
	fmt.Fprintf(stdout, "deleted client %s\n", id)
	return nil
}

// forgetClient revokes every token issued to the client and drops the
// consents users gave it, so a client later created with the same ID starts
// from nothing. It runs before the delete: a failure leaves the client in
// place for a retry. Tokens are revoked per subject; "" is the subject of
// client_credentials tokens.
func forgetClient(ctx context.Context, st storage.Store, id string) error {
	list, err := st.ListUsers(ctx)
	if err != nil {
		return err
	}
	if err := st.RevokeUserClientTokens(ctx, "", id); err != nil {
		return err
	}
	for _, u := range list {
		if err := st.RevokeUserClientTokens(ctx, u.ID, id); err != nil {
			return err
		}
		if err := st.DeleteConsent(ctx, u.ID, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

func toClientJSON(c storage.Client) clientJSON {
	alg := c.IDTokenAlg
	if alg == "" {
		alg = "RS256"
	}
	return clientJSON{ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
		Public: c.Public, GrantTypes: c.GrantTypes, IDTokenAlg: alg, MinACR: c.MinACR, Strict: c.Strict, FirstParty: c.FirstParty}
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
		sealer, err := factor.NewSealer(key)
		if err != nil {
			return err
		}
		added, err := idp.RotateKeys(ctx, st, sealer, time.Now().UTC(), activateIn)
		if err != nil {
			return err
		}
		if err := adminAudit(ctx, st, "admin.keys_rotated", "", "", "", nil); err != nil {
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
		return usageError{"audit: want verify or export"}
	}
	action := args[0]
	if isHelp(action) {
		return flag.ErrHelp
	}
	if action != "verify" && action != "export" {
		return usageError{"audit: unknown action " + action}
	}
	var since string
	fs, c, err := sub("audit "+action, args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&since, "since", "", "export events at or after this time (RFC 3339)")
	})
	if err != nil {
		return err
	}
	if err := noArgs(fs, "audit "+action); err != nil {
		return err
	}
	f := storage.AuditFilter{}
	if since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return usageError{"audit " + action + ": --since: " + err.Error()}
		}
		f.Since = t
	}
	st, _, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch action {
	case "verify":
		events, err := st.ListAudit(ctx, storage.AuditFilter{})
		if err != nil {
			return err
		}
		verr := storage.VerifyAuditChain(events)
		if c.json {
			res := map[string]any{"rows": len(events), "ok": verr == nil}
			if verr != nil {
				res["error"] = verr.Error()
			}
			if err := printJSON(stdout, res); err != nil {
				return err
			}
			return verr
		}
		if verr != nil {
			return verr
		}
		fmt.Fprintf(stdout, "audit chain intact: %d rows\n", len(events))
		return nil
	case "export":
		events, err := st.ListAudit(ctx, f)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		for _, e := range events {
			if err := enc.Encode(toAuditJSON(e)); err != nil {
				return err
			}
		}
		return nil
	}
	return usageError{"audit: unknown action " + action}
}

// auditJSON is one exported audit row: snake_case keys like the rest of the
// CLI's JSON and the database columns, and everything needed to re-check the
// hash chain outside Keystep (storage.AuditHash).
type auditJSON struct {
	Seq       int64             `json:"seq"`
	Time      time.Time         `json:"time"`
	Type      string            `json:"type"`
	UserID    string            `json:"user_id,omitempty"`
	ActorID   string            `json:"actor_id,omitempty"`
	ClientID  string            `json:"client_id,omitempty"`
	IP        string            `json:"ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Outcome   string            `json:"outcome"`
	Reason    string            `json:"reason,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	PrevHash  string            `json:"prev_hash"`
	Hash      string            `json:"hash"`
}

func toAuditJSON(e storage.AuditEvent) auditJSON {
	return auditJSON{e.Seq, e.Time, e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent,
		e.Outcome, e.Reason, e.Details, e.PrevHash, e.Hash}
}
