package login_test

import (
	"bytes"
	"database/sql"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the driver storage/sqlite registers, for damaging a row
)

// A request whose stored requirement cannot be read fails closed: an error
// page and a logged error, never a sign-in held to a made-up or empty acr
// (issue 16: parse once).
func TestUnreadableRequirementFailsClosed(t *testing.T) {
	for _, tt := range []struct {
		name, value string
	}{
		{"a requirement that is not JSON", `'{"acr":["phr"'`},
		{"no requirement at all, as a request from before it was stored", `NULL`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged bytes.Buffer
			f := newFixture(t, withLog(slog.New(slog.NewTextHandler(&logged, nil))))
			b := f.browser()
			f.signIn(b, alice, alicePass)
			id := f.request(b, mfaClient, acrValues(acrPHR))

			db, err := sql.Open("sqlite", f.dbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`UPDATE auth_requests SET requirement = `+tt.value+` WHERE id = ?`, id); err != nil {
				t.Fatal(err)
			}

			r := b.open(id)
			if r.status != http.StatusInternalServerError {
				t.Errorf("status = %d, want 500", r.status)
			}
			if r.location != "" {
				t.Errorf("redirected to %q; a request that cannot be read goes nowhere", r.location)
			}
			if log := logged.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "requirement") {
				t.Errorf("log = %q, want an error that names the requirement", log)
			}
			var done bool
			if err := db.QueryRow(`SELECT done FROM auth_requests WHERE id = ?`, id).Scan(&done); err != nil || done {
				t.Errorf("done = %v, %v; the request must stay unfinished", done, err)
			}
		})
	}
}
