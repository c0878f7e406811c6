package login_test

import (
	"strings"
	"testing"
	"time"
)

// A completed sign-in from a device and a network both new to the account
// is told to its verified address; a new browser on a known network, and
// the very first sign-in, are not.
func TestNewDeviceAndNetworkSignInIsTold(t *testing.T) {
	f := newFixture(t, withMail())
	f.verify(aliceID, "alice@one.example")
	f.signIn(f.browser(), alice, alicePass) // the first: nothing to compare with
	if ms := f.mails(); len(ms) != 0 {
		t.Fatalf("the first sign-in was told: %+v", ms)
	}
	f.clock.Advance(time.Hour)
	f.signIn(f.browser(), alice, alicePass) // a new browser at home
	if ms := f.mails(); len(ms) != 0 {
		t.Fatalf("a new browser on a known network was told: %+v", ms)
	}
	f.clock.Advance(time.Hour)
	b := f.browser()
	b.ip, b.ua = elsewhereIP, "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
	f.signIn(b, alice, alicePass)
	ms := f.mails()
	if len(ms) != 1 || ms[0].Message.To != "alice@one.example" || ms[0].Message.Subject != "New sign-in to your Keystep account" {
		t.Fatalf("mail: %+v", ms)
	}
	for _, want := range []string{elsewhereIP, "Firefox on Linux", f.srv.URL + "/account#activity"} {
		if !strings.Contains(ms[0].Message.Text, want) {
			t.Errorf("the notice lacks %q:\n%s", want, ms[0].Message.Text)
		}
	}
}
