package login_test

import (
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// The console's event filter offers every type Keystep writes, so an
// operator never has to know a name by heart to find its rows.
func TestConsoleAuditFilterOffersEveryEventType(t *testing.T) {
	f := newFixture(t, withAdminACR(acrMFA))
	f.makeAdmin(aliceID)
	secret := f.enrollTOTP(aliceID)
	b := f.browser()
	f.signInMFA(b, alice, alicePass, secret)
	f.clock.Advance(time.Minute)
	got := b.get("/admin/audit")
	if got.status != http.StatusOK {
		t.Fatalf("GET /admin/audit: %d\n%.2000s", got.status, got.body)
	}
	for _, e := range storage.EventTypes() {
		if option := `<option value="` + html.EscapeString(string(e)) + `">`; !strings.Contains(got.body, option) {
			t.Errorf("the event filter does not offer %s", e)
		}
	}
}
