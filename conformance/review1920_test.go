package conformance

// Review of issue 20 (back-channel logout, outbox) and issue 19
// (transaction-bound step-up, RFC 9396). Every test here FAILS on the code
// as it landed, for the reason its comment names; the lead fixes.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

// Finding R19-1 (medium): a transaction approved by a TOTP code is issued
// with acr=phr when the RP lists a lower acr value first and a higher one
// after it. Decide's rule 4 says "the approval is never weaker than the acr
// the token will carry" and "a higher level the session holds from before
// the request approved nothing" — but in the "active" branch (acr_values
// given) the reported acr is the first *requested* value at or above the
// target that is met, and e.met(r) for r above the approval rank does not
// ask for approval (eval.approved returns true when rank != e.approve). So
// acr_values="urn:keystep:acr:sfa phr" with details demanding mfa, from a
// session whose passkey was used before the request, approved now by a TOTP
// (which commits to nothing), yields acr=phr: an API that reads acr as how
// the payment was approved believes a passkey signed it.
func TestReview1920TransactionACRIsTheApprovalsNotAnEarlierHigherLevel(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	in := stepup.Input{
		Requested:      []string{stepup.ACRSingleFactor, stepup.ACRPhishing},
		TransactionMin: stepup.ACRMultiFactor, RequestTime: t0.Add(-time.Minute), Now: t0,
		Done: []stepup.Factor{
			{Method: stepup.Password, At: t0.Add(-3 * time.Minute)},
			{Method: stepup.WebAuthn, At: t0.Add(-2 * time.Minute)}, // before the request: shown nothing
			{Method: stepup.TOTP, At: t0.Add(-10 * time.Second), ForRequest: true},
		},
		Enrolled: []stepup.Enrolled{{Method: stepup.Password}, {Method: stepup.TOTP}, {Method: stepup.WebAuthn}},
	}
	d := stepup.Decide(nil, in)
	if d.Outcome != stepup.Satisfied {
		t.Fatalf("outcome %s, want satisfied (the TOTP of this request approves at mfa)", d.Outcome)
	}
	if d.ACR != stepup.ACRMultiFactor {
		t.Errorf("acr %q for a transaction approved by a TOTP code; want %q (the level that approved it), never a level held from before the request", d.ACR, stepup.ACRMultiFactor)
	}
}

// Finding R20-1 (medium): removing a factor in the portal ends no session
// and tells no app. The issue names "removes a factor" as one of the moments
// the apps' sessions must end; a person removes a TOTP or passkey because it
// is lost or stolen, yet the session the thief made with it keeps its
// factor events (session factors are never checked against the factors
// still enrolled), keeps minting mfa tokens, and the apps under it are never
// sent a logout token. Admin "reset factors" and a password change go
// through admin.EndAccess; postAccountTOTPDelete (login/account.go) calls
// only Store.DeleteFactor.
func TestReview1920RemovingAFactorEndsTheSessionsThatUsedIt(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	r, recv := e.addBackchannelRP("app-a", "ES256")

	// The thief signs in to the app with the password and the (stolen) code.
	thief := e.browser()
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	p := thief.signIn(thief.get(a.url), alice, alicePass)
	p = thief.submitCode(p, "/login/otp", e.totp(secret))
	if p.has("/login/consent") {
		p = thief.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	tok := r.mustExchange(r.code(p, a), a)
	if tok.claims.ACR != acrMFA {
		t.Fatalf("thief's acr %q", tok.claims.ACR)
	}

	// The owner, on another device, removes the authenticator app.
	e.clock.Advance(31 * time.Second) // a new TOTP window, and another sid
	owner := e.browser()
	owner.portalLogin()
	p = owner.submitCode(owner.get(e.issuer+"/account/totp"), "/login/otp", e.totp(secret))
	owner.post("/account/totp/delete", url.Values{"factor": {"f-u-alice"}})
	if fs, _ := e.store.ListFactors(context.Background(), "u-alice"); len(fs) != 0 {
		t.Fatalf("the factor was not removed: %d left", len(fs))
	}

	e.deliver()
	acc, _, _ := recv.got()
	if len(acc) != 1 || acc[0].SID != tok.claims.SID {
		t.Errorf("logout tokens after the factor was removed: %+v; want one for the thief's session %q", acc, tok.claims.SID)
	}
	if _, err := r.refresh(tok.token.RefreshToken); err == nil {
		t.Error("the thief's refresh token still works after the factor it was obtained with was removed")
	}
	// And the thief's browser session still counts the removed code.
	a2 := r.authURL(url.Values{"acr_values": {acrMFA}, "prompt": {"none"}})
	if p := thief.get(a2.url); p.redirect != nil && p.redirect.Query().Get("code") != "" {
		t.Error("the thief's session still reaches mfa with prompt=none, on a factor that no longer exists")
	}
}

// Finding R19-2 (low): what the person sees does not tell apart details
// that differ. plain() (idp/details/display.go) turns C0/C1 controls into
// spaces and bidi controls into U+FFFD, but leaves the invisible format
// characters (U+200B zero-width space, U+2060 word joiner, U+00AD soft
// hyphen, U+FEFF, the tag block U+E0000–E007F), and it cuts a value at
// MaxValue characters with "…", so a creditor name padded with spaces
// (collapsed by HTML) hides its tail. Each pair below is two different
// transactions (different canonical form, different hash, different token)
// the approval page shows identically. Fix: refuse, in Registry.Check,
// shown text fields longer than MaxValue and any rune of category Cf/Co/Cn
// (or, better, show an escaped form with a warning), so a value is either
// shown whole and visibly or refused.
func TestReview1920DifferentTransactionsAreShownDifferently(t *testing.T) {
	reg := details.ExamplePayments(acrMFA, acrPHR)
	pay := func(creditor string) (details.Details, bool) {
		d, err := details.Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":` + jsonString(creditor) + `}]`)
		if err != nil {
			return nil, false
		}
		return d, reg.Check(d, []string{details.PaymentInitiation}) == nil
	}
	// seen is what a person sees of the approval page: invisible format
	// characters (category Cf) draw nothing, runs of white space collapse
	// (HTML).
	seen := func(d details.Details) string {
		var b strings.Builder
		for _, it := range reg.Display(d) {
			for _, l := range it.Lines {
				v := strings.Map(func(r rune) rune {
					if unicode.Is(unicode.Cf, r) {
						return -1
					}
					return r
				}, l.Value)
				v = strings.Join(strings.Fields(v), " ")
				b.WriteString(l.Label + ": " + v + "\n")
			}
		}
		return b.String()
	}
	for _, tc := range []struct{ name, a, b string }{
		{"zero-width space", "Example Supplies Ltd", "Example Supplies\u200b Ltd"},
		{"word joiner", "Example Supplies Ltd", "Example\u2060 Supplies Ltd"},
		{"soft hyphen", "Example Supplies Ltd", "Exam\u00adple Supplies Ltd"},
		{"tag characters", "Example Supplies Ltd", "Example Supplies Ltd\U000E0041\U000E0042"},
		{"a tail past MaxValue", "Example Supplies Ltd", "Example Supplies Ltd" + strings.Repeat(" ", details.MaxValue) + "c/o Mallory Holdings"},
	} {
		// The last case is shown as "To: Example Supplies Ltd …": the
		// person sees that something was cut but can never read what they
		// approve; the part that makes it another creditor is not shown.
		t.Run(tc.name, func(t *testing.T) {
			da, okA := pay(tc.a)
			db, okB := pay(tc.b)
			if !okA {
				t.Fatalf("the plain payment is refused")
			}
			if !okB {
				return // refused: nothing to confuse
			}
			if da.String() == db.String() {
				t.Fatal("the two are the same transaction")
			}
			if sa, sb := seen(da), seen(db); sa == sb {
				t.Errorf("two different transactions (hashes differ, tokens differ) look the same on the approval page:\n%s", sa)
			} else if strings.Contains(tc.b, "Mallory") && !strings.Contains(sb, "Mallory") {
				t.Errorf("the creditor approved is not shown whole; the page says only:\n%s", sb)
			}
		})
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Finding R19-3 (low, before idp/resource.RequireDetails lands on it):
// details.Covers treats arrays as sets, so an approval of ONE instruction
// covers a request naming the same instruction twice: want
// {"payments":[P,P]} is "contained" in approved {"payments":[P]} since each
// want element is matched by some approved element, with no element used
// once. That is right for string sets like actions ([initiate,status]
// covers [initiate]) and wrong for lists of values (instructions, line
// items, recipients): an API that batches checks one Covers and pays twice
// what the person approved. Fix: match array elements one to one (each
// approved element used at most once), or restrict set semantics to the
// RFC 9396 §2.2 common arrays of strings.
func TestReview1920CoversCountsArrayElements(t *testing.T) {
	approved, err := details.Parse(`[{"type":"bulk_payment","payments":[{"amount":"1250.00","creditor":"Example Supplies Ltd"}]}]`)
	if err != nil {
		t.Fatal(err)
	}
	p := map[string]any{"amount": "1250.00", "creditor": "Example Supplies Ltd"}
	want := map[string]any{"type": "bulk_payment", "payments": []any{p, p}}
	if details.Covers(approved, want) {
		t.Error("an approval of one EUR 1,250 payment covers a batch of two")
	}
}

// Finding R20-2 (low; medium on IPv6-only clusters with DNS64/NAT64): the
// outbox dialer's SSRF rule (allowedAddress, idp/outbox.go) only knows
// IPv4-mapped addresses (Unmap). IPv6 forms that embed an IPv4 address and
// reach it through a translator pass: NAT64 (64:ff9b::/96, RFC 6052, and
// the local-use 64:ff9b:1::/48, RFC 8215) and 6to4 (2002::/16, RFC 3056).
// On a host with a NAT64 gateway, https://[64:ff9b::a00:1]/ is 10.0.0.1
// (and 64:ff9b::a9fe:a9fe the cloud metadata service). The test registers
// such URIs; the private-IPv4 control is refused by the dialer with
// errForbiddenAddress, the embedded ones are dialled (here: "network is
// unreachable", i.e. the connect was attempted). Fix: in allowedAddress,
// extract the embedded IPv4 of 64:ff9b::/96, 64:ff9b:1::/48 and 2002::/16
// (and refuse ::/96 IPv4-compatible outright) and apply the IPv4 rules to
// it; also refuse the other special ranges (192.0.0.0/24, 198.18.0.0/15,
// 240.0.0.0/4, 255.255.255.255) — net/netip has no IsGlobalUnicast
// strict enough; a table of RFC 6890 prefixes is the right depth.
func TestReview1920OutboxRefusesPrivateTargetsEmbeddedInIPv6(t *testing.T) {
	e := newEnv(t)
	targets := map[string]string{
		"control-10":  "https://10.0.0.1/bcl",
		"nat64":       "https://[64:ff9b::a00:1]/bcl",
		"nat64-local": "https://[64:ff9b:1::a00:1]/bcl",
		"6to4":        "https://[2002:a00:1::1]/bcl",
		"metadata64":  "https://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
	}
	var clients []string
	for id, uri := range targets {
		e.addBackchannelRP(id, "ES256")
		c, err := e.store.ClientByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		c.BackchannelLogoutURI = uri
		if err := e.store.UpdateClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, id)
	}
	b := e.browser()
	for _, id := range clients {
		r := e.rp(id, "s3cret-"+id)
		a := r.authURL(nil)
		p := b.get(a.url)
		if p.has("/login/password") {
			p = b.signIn(p, alice, alicePass)
		}
		if p.has("/login/consent") {
			p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
		}
		r.mustExchange(r.code(p, a), a)
	}
	b.post("/account/signout", nil)
	_, _ = e.server.DeliverDue(context.Background()) // failures are kept on the messages
	ms, err := e.store.OutboxMessages(context.Background(), "", "", 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(targets) {
		t.Fatalf("%d messages, want %d", len(ms), len(targets))
	}
	for _, m := range ms {
		if !strings.Contains(m.LastError, "not allowed") {
			t.Errorf("%s (%s): the dialer did not refuse it: %s", m.ClientID, targets[m.ClientID], m.LastError)
		}
	}
}

// Finding R20-3 (medium, availability of logout): one app that accepts
// connections and never answers (a hung RP, or a hostile one) holds up
// every other app's logout. DeliverDue claims the 16 oldest due messages
// whatever their target, delivers them at once and waits for all of them
// (wg.Wait) before the next claim: with N messages pending for a stalled
// receiver, another app's logout waits ceil(N/16) × Timeout (5 s) — after a
// mass event (the session sweeper, a disable of many users, an RP down for
// a day whose retries come due together) that is minutes to hours, for
// apps that are up. Here 48 messages for the stalled app are due before
// one for a healthy app; after a whole pass the healthy app has nothing.
// Fix: fairness per target at claim time (at most k messages per client
// or host per claim, e.g. a window function / DISTINCT ON in ClaimOutbox),
// and a worker that does not wait for its slowest delivery before
// claiming again (a per-host concurrency cap instead of a batch barrier).
func TestReview1920AStalledAppDoesNotHoldUpOtherAppsLogouts(t *testing.T) {
	stall := make(chan struct{})
	e := newEnv(t, func(c *idp.Config) {
		c.Outbox = idp.OutboxConfig{Timeout: 200 * time.Millisecond, Lease: time.Minute}
	})
	_, good := e.addBackchannelRP("good", "ES256")
	e.addBackchannelRP("stalled", "ES256")
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(stall) }) // runs first
	c, err := e.store.ClientByID(context.Background(), "stalled")
	if err != nil {
		t.Fatal(err)
	}
	c.BackchannelLogoutURI = hung.URL + "/bcl"
	if err := e.store.UpdateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	msg := func(id, client, target string, at time.Time) storage.OutboxMessage {
		return storage.OutboxMessage{ID: id, Kind: storage.OutboxBackchannelLogout, ClientID: client, Target: target,
			Payload: `{"sub":"u-alice","sid":"sid-` + id + `","jti":"` + id + `"}`, Status: storage.OutboxPending, QueuedAt: at, NextAttemptAt: at}
	}
	now := e.clock.Now()
	var msgs []storage.OutboxMessage
	for i := range 48 {
		msgs = append(msgs, msg(fmt.Sprintf("stalled-%02d", i), "stalled", hung.URL+"/bcl", now.Add(-time.Minute)))
	}
	msgs = append(msgs, msg("good-1", "good", good.srv.URL+"/backchannel", now))
	if err := e.store.EndSessions(context.Background(), nil, msgs); err != nil {
		t.Fatal(err)
	}
	_, _ = e.server.DeliverDue(context.Background())
	if acc, _, calls := good.got(); calls == 0 {
		t.Errorf("after a full delivery pass the healthy app got nothing (accepted %d): the stalled app's 48 messages took the whole pass", len(acc))
	}
}

// Finding R19-4 (medium): a one-off payment approval is refreshable for the
// life of the browser session it was made in (SessionMaxAge, 12 h by
// default; the sweeper ends the family only with the session). The
// approval of EUR 1,250 needed a passkey used within 5 minutes (the type's
// max_age), yet the code exchange returns a refresh token, and 6 hours
// later that refresh token mints a new access token carrying the same
// authorization_details, acr phr and the old approval's auth_time. Dynamic linking (PSD2 RTS art. 5) wants the
// authentication code specific to one amount and payee *and used once*;
// here the client (or whoever steals its refresh token) can obtain fresh
// tokens to pay the same invoice again all day with no person in the
// loop. Fix: a grant with authorization_details gets no refresh token, or
// its family expires at the approval time + the details' max_age (and
// refresh refuses details past it); whichever, say it in the README.
func TestReview1920APaymentApprovalIsNotRefreshableForever(t *testing.T) {
	e, r, key := rarEnv(t)
	a, code := e.payCode(e.browser(), r, key, bigPayment, nil)
	status, out := e.redeem(a, code, nil)
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, out)
	}
	rt, _ := out["refresh_token"].(string)
	if rt == "" {
		return // no refresh token for a transaction: fixed
	}
	e.clock.Advance(6 * time.Hour) // the session (12 h) still lives
	status, out, _ = e.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, payClient, paySecret)
	if status == http.StatusOK {
		at, _ := out["access_token"].(string)
		c := jwtClaims(t, at)
		t.Errorf("6 hours after a 5-minute approval, a refresh returns a new access token for the same payment: authorization_details %s, acr %v, auth_time %v",
			canonical(t, c["authorization_details"]), c["acr"], c["auth_time"])
	}
}
