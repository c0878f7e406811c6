package conformance

import (
	"context"
	"testing"
	"time"
)

// Issue 16 review: what "parse once" must not change.

// A client's minimum raised while a sign-in is under way applies to it:
// before issue 16 the login read the client's floor when it decided, and
// DESIGN §3.3 says nothing lowers the target. Storing the floor at
// /authorize must not let a request started a moment before the change
// finish below the new floor (an administrator raising a client's level
// in response to an incident expects it to hold from then on).
func TestReview3ClientFloorRaisedMidSignInApplies(t *testing.T) {
	e := newEnv(t)
	e.enrollTOTP("u-alice")
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	p := b.get(a.url) // the password page: the request is stored

	ctx := context.Background()
	c, err := e.store.ClientByID(ctx, rpClient)
	if err != nil {
		t.Fatal(err)
	}
	c.MinACR = acrMFA
	if err := e.store.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // past the client cache (clientCacheTTL, real time)

	p = b.signIn(p, alice, alicePass)
	if p.redirect != nil {
		q := p.redirect.Query()
		if q.Get("code") != "" {
			tok := r.mustExchange(q.Get("code"), a)
			t.Fatalf("a code at acr %q after the client's floor was raised to %s", tok.claims.ACR, acrMFA)
		}
		t.Fatalf("redirected with %q, want the code page", q.Get("error"))
	}
	if !p.has("/login/otp") {
		t.Fatalf("want the authenticator-app step, got %d:\n%.1500s", p.status, p.body)
	}
}
