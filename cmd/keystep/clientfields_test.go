package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/storage"
)

const ecJWKSFile = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}`

// The PAR, DPoP, profile and back-channel logout settings of issues 18
// and 20 are set by clients create and update, checked like every other
// setting, and shown by list and show.
func TestClientsFlagsForPARDPoPProfileAndBackchannelLogout(t *testing.T) {
	d := t.TempDir()
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, []byte(ecJWKSFile), 0o600); err != nil {
		t.Fatal(err)
	}

	// fapi2 needs nothing else but the keys: it implies the switches and
	// defaults to ES256 and private_key_jwt.
	c := createClient(t, d, "--id", "bank", "--redirect-uri", "https://bank.example/cb", "--profile", "fapi2", "--jwks-file", jwks)
	if c.Secret != "" || c.Profile != "fapi2" || !c.RequirePAR || !c.DPoPBoundAccessTokens || c.IDTokenAlg != "ES256" {
		t.Fatalf("created fapi2 client %+v", c)
	}
	withStore(t, d, func(st storage.Store) {
		cl, err := st.ClientByID(t.Context(), "bank")
		if err != nil || cl.Profile != storage.ProfileFAPI2 || !cl.RequirePAR || !cl.DPoPBoundAccessTokens || !cl.RequirePKCE || cl.AuthMethod != "private_key_jwt" || cl.IDTokenAlg != "ES256" {
			t.Fatalf("stored fapi2 client %+v %v", cl, err)
		}
	})

	createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	r := mustKeystep(t, "", "clients", "update", "rp", "--require-par", "--dpop",
		"--backchannel-logout-uri", "https://rp.example/bc", "--backchannel-logout-session-required", "--data", d)
	for _, want := range []string{
		"require_pushed_authorization_requests: false → true",
		"dpop_bound_access_tokens: false → true",
		"backchannel_logout_uri: (none) → https://rp.example/bc",
		"backchannel_logout_session_required: false → true",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("update does not say %q:\n%s", want, r.stdout)
		}
	}
	withStore(t, d, func(st storage.Store) {
		cl, _ := st.ClientByID(t.Context(), "rp")
		if !cl.RequirePAR || !cl.DPoPBoundAccessTokens || cl.Profile != "" || cl.BackchannelLogoutURI != "https://rp.example/bc" || !cl.BackchannelLogoutSessionRequired {
			t.Errorf("stored %+v", cl)
		}
	})
	r = mustKeystep(t, "", "clients", "show", "rp", "--data", d)
	for _, want := range []string{"require_pushed_authorization_requests: true", "dpop_bound_access_tokens: true", "backchannel_logout_uri: https://rp.example/bc", "backchannel_logout_session_required: true"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	// Only the flags given change; false turns a switch off.
	r = mustKeystep(t, "", "clients", "update", "rp", "--dpop=false", "--backchannel-logout-uri", "", "--backchannel-logout-session-required=false", "--data", d)
	if !strings.Contains(r.stdout, "dpop_bound_access_tokens: true → false") || !strings.Contains(r.stdout, "backchannel_logout_uri: https://rp.example/bc → (none)") || strings.Contains(r.stdout, "require_pushed") {
		t.Errorf("switching off:\n%s", r.stdout)
	}

	// --profile none leaves the profile, and what it switched on stays on
	// until switched off.
	r = mustKeystep(t, "", "clients", "update", "bank", "--profile", "none", "--data", d)
	if !strings.Contains(r.stdout, "profile: fapi2 → (none)") {
		t.Errorf("profile none:\n%s", r.stdout)
	}
	withStore(t, d, func(st storage.Store) {
		if cl, _ := st.ClientByID(t.Context(), "bank"); cl.Profile != "" || !cl.RequirePAR {
			t.Errorf("after profile none %+v", cl)
		}
	})
}

func TestClientsFlagsRefuseWhatTheProfileOrTheURIDoNotAllow(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"an unknown profile", []string{"--profile", "fapi1"}, []string{`profile "fapi1": want fapi2 or none`}},
		{"fapi2 with a secret and RS256, every problem at once", []string{"--profile", "fapi2", "--auth-method", "client_secret_basic", "--id-token-alg", "RS256"},
			[]string{"must authenticate with private_key_jwt", "must be signed with ES256 or EdDSA, not RS256"}},
		{"fapi2 for a public client", []string{"--profile", "fapi2", "--public"}, []string{"must be confidential"}},
		{"fapi2 without keys", []string{"--profile", "fapi2"}, []string{"private_key_jwt"}},
		{"a back-channel logout URI on plain http", []string{"--backchannel-logout-uri", "http://rp.example/bc"}, []string{"must use https (http only for localhost)"}},
		{"a back-channel logout URI with a fragment", []string{"--backchannel-logout-uri", "https://rp.example/bc#x"}, []string{"must not have a fragment"}},
		{"sid without a URI", []string{"--backchannel-logout-session-required"}, []string{"needs a back-channel logout URI"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			args := append([]string{"clients", "create", "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--data", d}, tt.args...)
			wantExit(t, keystep(t, "", args...), 2, tt.want...)
			noFile(t, filepath.Join(d, "keystep.db"))

			// The same flags on update change nothing.
			createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
			rows := len(auditLog(t, d))
			wantExit(t, keystep(t, "", append([]string{"clients", "update", "rp", "--data", d}, tt.args...)...), 2, tt.want...)
			if n := len(auditLog(t, d)); n != rows {
				t.Errorf("a refused update wrote %d audit rows", n-rows)
			}
		})
	}
}

// serve --require-par and the config file's
// require_pushed_authorization_requests both reach idp.Config.RequirePAR.
func TestServeRequirePAR(t *testing.T) {
	stop := errors.New("stop before serving")
	var got []bool
	prev := newServer
	newServer = func(_ context.Context, cfg idp.Config) (*idp.Server, error) {
		got = append(got, cfg.RequirePAR)
		return nil, stop
	}
	t.Cleanup(func() { newServer = prev })
	on := writeFile(t, "keystep.yaml", "require_pushed_authorization_requests: true\n")
	off := writeFile(t, "off.yaml", "product_name: Acme ID\n")
	for _, args := range [][]string{
		{"--config", off},
		{"--require-par", "--config", off},
		{"--config", on},
	} {
		r := keystep(t, "", append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)...)
		wantExit(t, r, 1, stop.Error())
	}
	if want := []bool{false, true, true}; !slices.Equal(got, want) {
		t.Errorf("RequirePAR %v, want %v", got, want)
	}
	// export keeps the server-wide switch.
	r := mustKeystep(t, "", "export", "--config", on, "--data", t.TempDir())
	if !strings.Contains(r.stdout, "require_pushed_authorization_requests: true") {
		t.Errorf("export:\n%s", r.stdout)
	}
}

const applyNewFields = `require_pushed_authorization_requests: true
clients:
  - id: bank
    redirect_uris: [https://bank.example/cb]
    profile: fapi2
    jwks:
      keys:
        - kty: EC
          crv: P-256
          x: f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU
          y: x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0
  - id: rp
    redirect_uris: [https://rp.example/cb]
    require_pushed_authorization_requests: true
    dpop_bound_access_tokens: true
    backchannel_logout_uri: https://rp.example/bc
    backchannel_logout_session_required: true
`

// apply reads the new keys, export writes them, applying the export changes
// nothing, and a dry run names every change to them.
func TestApplyAndExportTheNewClientKeys(t *testing.T) {
	d := t.TempDir()
	f := writeFile(t, "keystep.yaml", applyNewFields)
	mustKeystep(t, "", "apply", "-f", f, "--data", d)
	withStore(t, d, func(st storage.Store) {
		bank, _ := st.ClientByID(t.Context(), "bank")
		rp, _ := st.ClientByID(t.Context(), "rp")
		if bank.Profile != storage.ProfileFAPI2 || !bank.RequirePAR || !bank.DPoPBoundAccessTokens || bank.IDTokenAlg != "ES256" || bank.SecretHash != "" {
			t.Errorf("bank %+v", bank)
		}
		if !rp.RequirePAR || !rp.DPoPBoundAccessTokens || rp.BackchannelLogoutURI != "https://rp.example/bc" || !rp.BackchannelLogoutSessionRequired || rp.Profile != "" {
			t.Errorf("rp %+v", rp)
		}
	})
	if o := applyRun(t, d, f); o.Changed {
		t.Errorf("applying the same file again: %+v", o)
	}

	out := filepath.Join(t.TempDir(), "exported.yaml")
	mustKeystep(t, "", "export", "--config", f, "-o", out, "--data", d)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"require_pushed_authorization_requests: true", "dpop_bound_access_tokens: true", "profile: fapi2",
		"backchannel_logout_uri: https://rp.example/bc", "backchannel_logout_session_required: true",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("export lacks %q:\n%s", want, raw)
		}
	}
	if o := applyRun(t, d, out); o.Changed {
		t.Errorf("applying the export changed something: %+v", o)
	}
	exported, err := loadConfig(out)
	if err != nil || !exported.requirePAR {
		t.Errorf("the export lost the server-wide switch: %v", err)
	}

	changed := strings.NewReplacer(
		"    profile: fapi2\n", "",
		"    dpop_bound_access_tokens: true\n", "",
		"https://rp.example/bc", "https://rp.example/logout",
		"    backchannel_logout_session_required: true\n", "",
	).Replace(applyNewFields)
	r := mustKeystep(t, "", "apply", "-f", writeFile(t, "changed.yaml", changed), "--dry-run", "--data", d)
	for _, want := range []string{
		// The file is the whole client: without the profile, what it
		// implied is off too, and the dry run says so.
		"would update bank: id_token_alg: ES256 → RS256; require_pkce: true → false; require_pushed_authorization_requests: true → false; dpop_bound_access_tokens: true → false; profile: fapi2 → (none)",
		"would update rp: dpop_bound_access_tokens: true → false",
		"backchannel_logout_uri: https://rp.example/bc → https://rp.example/logout",
		"backchannel_logout_session_required: true → false",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dry run does not say %q:\n%s", want, r.stdout)
		}
	}
	withStore(t, d, func(st storage.Store) {
		if rp, _ := st.ClientByID(t.Context(), "rp"); !rp.DPoPBoundAccessTokens || rp.BackchannelLogoutURI != "https://rp.example/bc" {
			t.Error("a dry run changed the client")
		}
	})

	// A file with a bad profile or URI is refused whole.
	bad := writeFile(t, "bad.yaml", strings.NewReplacer("profile: fapi2", "profile: fapi1", "https://rp.example/bc", "http://rp.example/bc#x").Replace(applyNewFields))
	wantExit(t, keystep(t, "", "apply", "-f", bad, "--data", d), 1,
		`clients[0] (bank).profile: profile "fapi1"`, `clients[1] (rp).backchannel_logout_uri`)
}

// clients create and update --admin-api grant and revoke the admin API;
// a grant the client cannot use is refused and changes nothing.
func TestClientsAdminAPIFlag(t *testing.T) {
	d := t.TempDir()
	c := createClient(t, d, "--id", "robot", "--grant", "client_credentials", "--admin-api", "read")
	if c.AdminAPI != storage.AdminAPIRead || c.Secret == "" {
		t.Fatalf("created %+v", c)
	}
	r := mustKeystep(t, "", "clients", "update", "robot", "--admin-api", "write", "--data", d)
	if !strings.Contains(r.stdout, "admin_api: read → write") {
		t.Errorf("update does not say what changed:\n%s", r.stdout)
	}
	if r := keystep(t, "", "clients", "update", "robot", "--admin-api", "root", "--data", d); r.code == 0 || !strings.Contains(r.stderr, "admin API access \"root\"") {
		t.Errorf("an unknown grant: exit %d\n%s", r.code, r.stderr)
	}
	if r := keystep(t, "", "clients", "create", "--id", "web", "--redirect-uri", "https://rp.example/cb", "--admin-api", "read", "--data", d); r.code == 0 || !strings.Contains(r.stderr, "client_credentials") {
		t.Errorf("a client without client_credentials: exit %d\n%s", r.code, r.stderr)
	}
	withStore(t, d, func(st storage.Store) {
		cl, err := st.ClientByID(t.Context(), "robot")
		if err != nil || cl.AdminAPI != storage.AdminAPIWrite {
			t.Fatalf("stored %+v %v", cl, err)
		}
		if _, err := st.ClientByID(t.Context(), "web"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the refused client was stored: %v", err)
		}
	})
	mustKeystep(t, "", "clients", "update", "robot", "--admin-api", "none", "--data", d)
	withStore(t, d, func(st storage.Store) {
		if cl, _ := st.ClientByID(t.Context(), "robot"); cl.AdminAPI != "" {
			t.Fatalf("revoked, still %q", cl.AdminAPI)
		}
	})
}
