package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/signin"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// recordSignIns writes, through the server's auditor, the events three
// payroll sign-ins with the email scope (mfa today) left: alice (password,
// TOTP, passkey) and bob (password, TOTP) were asked for their code, carol
// (password, passkey) for her passkey. One more sign-in of 40 days ago and
// one login.completed recorded without its decision input complete the log.
func recordSignIns(t *testing.T, data string, now time.Time) {
	t.Helper()
	key, err := storage.NewAuditKey(readMasterKey(t, data))
	if err != nil {
		t.Fatal(err)
	}
	withStore(t, data, func(st storage.Store) {
		at := now.Add(-time.Hour)
		a := &web.Auditor{Store: st, Key: key, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return at }}
		pwd, totp := stepup.Enrolled{Method: stepup.Password}, stepup.Enrolled{Method: stepup.TOTP}
		key := stepup.Enrolled{Method: stepup.WebAuthn, UserVerifying: true}
		signIn := func(id, user string, did stepup.Method, enrolled ...stepup.Enrolled) {
			in := stepup.Input{RequestTime: at, Now: at, Done: []stepup.Factor{{Method: stepup.Password, At: at}}, Enrolled: enrolled,
				ScopeMins: []string{stepup.ACRMultiFactor}}
			rec := func(typ storage.EventType) {
				if err := a.Record(t.Context(), storage.AuditEvent{Type: typ, UserID: user, ClientID: "payroll",
					Details: map[string]string{signin.ReplayKey: signin.ReplayOf(id, []string{"openid", "email"}, in).Encode()}}); err != nil {
					t.Fatal(err)
				}
			}
			rec(storage.EventStepupRequested)
			in.Now = at.Add(time.Minute)
			in.Done = append(in.Done, stepup.Factor{Method: did, At: in.Now, UserVerified: did == stepup.WebAuthn, ForRequest: true})
			rec(storage.EventLoginCompleted)
		}
		at = now.Add(-40 * 24 * time.Hour)
		signIn("old", "u-bob", stepup.TOTP, pwd, totp)
		at = now.Add(-time.Hour)
		signIn("ar1", "u-alice", stepup.TOTP, pwd, totp, key)
		signIn("ar2", "u-bob", stepup.TOTP, pwd, totp)
		signIn("ar3", "u-carol", stepup.WebAuthn, pwd, key)
		if err := a.Record(t.Context(), storage.AuditEvent{Type: storage.EventLoginCompleted, UserID: "u-dan", ClientID: "payroll"}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPolicyPreview(t *testing.T) {
	data := t.TempDir()
	createClient(t, data, "--id", "payroll", "--redirect-uri", "https://payroll.example/cb")
	now := fixClock(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	recordSignIns(t, data, now)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cur := write("current.yaml", "scope_min_acr:\n  email: urn:keystep:acr:mfa\n")
	prop := write("new.yaml", "scope_min_acr:\n  email: phr\n")

	t.Run("table", func(t *testing.T) {
		r := mustKeystep(t, "", "policy", "preview", "-f", prop, "--current", cur, "--data", data)
		// alice: a passkey instead of her code (extra prompt); bob: no
		// passkey (denied); carol: unchanged. The old sign-in is outside
		// the 30 days; dan's event has no input.
		for _, want := range []string{
			"Replayed 3 sign-ins; 1 audit event not replayable.",
			"payroll  3         1             1       0              0            0",
			"1  extra prompt: webauthn",
			"1  denied: unmet_authentication_requirements",
			"1  extra prompt: scope_minimum → phr",
			"1  recorded without its decision input (login.completed)",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("a client's own scope minimum", func(t *testing.T) {
		// The server-wide email minimum stays mfa; payroll alone now needs
		// phr for openid, which each of the three asked for: by hand, alice
		// (has a passkey) is asked for it instead of her code, bob (none)
		// is denied, carol used hers already. hr's phrh applies to hr only.
		own := write("own.yaml", "scope_min_acr:\n  email: urn:keystep:acr:mfa\nclient_policies:\n  payroll:\n    scope_min_acr:\n      openid: phr\n  hr:\n    scope_min_acr:\n      email: phrh\n")
		r := mustKeystep(t, "", "policy", "preview", "-f", own, "--current", cur, "--data", data)
		for _, want := range []string{
			"payroll  3         1             1       0              0            0",
			"1  extra prompt: webauthn",
			"1  denied: unmet_authentication_requirements",
			"1  extra prompt: scope_minimum → phr",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
		// Another client's minimum changes nothing at payroll.
		other := write("other.yaml", "scope_min_acr:\n  email: urn:keystep:acr:mfa\nclient_policies:\n  hr:\n    scope_min_acr:\n      email: phr\n")
		r = mustKeystep(t, "", "policy", "preview", "-f", other, "--current", cur, "--data", data)
		if want := "payroll  3         0             0       0              0            0"; !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	})
	t.Run("the active stored version is the default current policy", func(t *testing.T) {
		withStore(t, data, func(st storage.Store) {
			if _, err := st.CreatePolicyVersion(t.Context(), storage.PolicyVersion{Document: `{"scope_min_acr":{"email":"phr"}}`,
				Author: "test", Reason: "phr for email", Diff: "-", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
		})
		// Against version 1 (email: phr), the same minimum changes nothing;
		// mfa allows bob again and asks alice for the code she used
		// rather than her passkey (another prompt: counted as extra).
		r := mustKeystep(t, "", "policy", "preview", "-f", prop, "--data", data)
		for _, want := range []string{"against the active version 1", "payroll  3         0             0       0              0            0"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r.stdout)
			}
		}
		r = mustKeystep(t, "", "policy", "preview", "-f", cur, "--data", data)
		if want := "payroll  3         1             0       0              1            0"; !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := mustKeystep(t, "", "policy", "preview", "-f", prop, "--current", cur, "--days", "60", "--json", "--data", data)
		var out struct {
			Total struct {
				SignIns     int `json:"sign_ins"`
				ExtraPrompt int `json:"extra_prompt"`
				Denied      int `json:"denied"`
			} `json:"total"`
			Examples []struct {
				Seq int64 `json:"seq"`
			} `json:"examples"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatal(err)
		}
		// 60 days take the old sign-in too: bob, denied again.
		if out.Total.SignIns != 4 || out.Total.ExtraPrompt != 1 || out.Total.Denied != 2 || len(out.Examples) != 3 {
			t.Errorf("%s", r.stdout)
		}
	})
	t.Run("every problem at once", func(t *testing.T) {
		bad := write("bad.yaml", "scope_min_acr:\n  email: nope\nrisk:\n  medium: 0\ntypo: 1\n")
		r := keystep(t, "", "policy", "preview", "-f", bad, "--current", cur, "--data", data)
		wantExit(t, r, 1, "proposed policy", `scope_min_acr.email: unknown acr "nope"`, "risk:", "typo")
	})
	t.Run("usage", func(t *testing.T) {
		wantExit(t, keystep(t, "", "policy", "preview", "--data", data), 2, "-f FILE")
	})
}

// TestSimulateCompare: a simulated population's real sign-ins (risk,
// drift and attacks included), replayed under the very policy that
// decided them, change nothing and all end as recorded: the recorded
// input is the whole input. A proposed mfa minimum on openid then asks
// some of them for more.
func TestSimulateCompare(t *testing.T) {
	dir := t.TempDir()
	same := filepath.Join(dir, "same.yaml")
	mfa := filepath.Join(dir, "mfa.yaml")
	for p, body := range map[string]string{same: "product_name: Same\n", mfa: "scope_min_acr:\n  openid: urn:keystep:acr:mfa\n"} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type cmp struct {
		Compare struct {
			Total struct {
				SignIns     int `json:"sign_ins"`
				ExtraPrompt int `json:"extra_prompt"`
				Denied      int `json:"denied"`
				Removed     int `json:"fewer_prompts"`
				Allowed     int `json:"allowed"`
				Different   int `json:"different"`
			} `json:"total"`
			NotReplayable   map[string]int `json:"not_replayable"`
			RecordedDiffers int            `json:"recorded_differs"`
		} `json:"compare"`
	}
	run := func(file string) cmp {
		r := mustKeystep(t, "", "simulate", "--seed", "3", "--users", "20", "--days", "2", "--stuffing-pairs", "100", "--guess-days", "1",
			"--compare", file, "--json", "--data", t.TempDir())
		var c cmp
		if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := run(same).Compare
	if tt := c.Total; tt.SignIns < 100 || tt.ExtraPrompt+tt.Denied+tt.Removed+tt.Allowed+tt.Different != 0 || c.RecordedDiffers != 0 || len(c.NotReplayable) != 0 {
		t.Errorf("the same policy: %+v", c)
	}
	if c := run(mfa).Compare; c.Total.ExtraPrompt == 0 || c.RecordedDiffers != 0 {
		t.Errorf("an mfa minimum: %+v", c)
	}
}
