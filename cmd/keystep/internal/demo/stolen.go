package demo

import (
	"context"
	"net/http"
	"strconv"

	"github.com/keystep/keystep/idp/dpop"
)

// "What if it's stolen?": the dashboard's panel replays the session's
// access token the way a thief who copied it would, from the app's server
// (a thief has no browser session here, only the token), and shows what
// the API and Keystep answer. The token is DPoP-bound, so every attempt is
// refused: without the session's private key there is no valid proof.

// replay is one attempt with the copied token.
type replay struct {
	What    string // what the thief tried, in plain words
	Refused bool
	Answer  string // the answer, in plain words
	Detail  string // status and WWW-Authenticate, for developers
}

// thiefAttempts are the ways a thief would use a copied token: as a plain
// bearer token, and under the DPoP scheme with a proof of the thief's own
// key, at the app's API; and at Keystep's userinfo, without a proof.
func (a *App) thiefAttempts(ctx context.Context, s *session, c *conn) ([]replay, error) {
	thief, err := newSessionKey()
	if err != nil {
		return nil, err
	}
	attempts := []struct {
		what, url, scheme string
		key               *dpop.Prover
	}{
		{"Sent it to the payroll API as an ordinary bearer token", a.cfg.URL + "/api/payslips", "Bearer", nil},
		{"Sent it to the payroll API with a proof signed by the thief's own key", a.cfg.URL + "/api/payslips", dpop.Scheme, thief},
		{"Sent it to Keystep to read your profile, without a proof", c.userinfo, dpop.Scheme, nil},
	}
	var out []replay
	for _, at := range attempts {
		req, err := newRequest(ctx, http.MethodGet, at.url, nil)
		if err != nil {
			return nil, err
		}
		if err := dpopRequest(req, at.scheme, s.accessToken, at.key, a.cfg.Now()); err != nil {
			return nil, err
		}
		res, err := a.send(req)
		if err != nil {
			return nil, err
		}
		r := replay{What: at.what, Refused: res.status == http.StatusUnauthorized,
			Detail: res.header.Get("WWW-Authenticate")}
		if r.Detail != "" {
			r.Detail = "WWW-Authenticate: " + r.Detail
		}
		r.Detail = http.StatusText(res.status) + " (" + strconv.Itoa(res.status) + ") " + r.Detail
		switch {
		case r.Refused:
			r.Answer = "Refused. The token works only with the key that stays inside Acme Payroll."
		case res.status == http.StatusOK:
			r.Answer = "Accepted. A copied token should never get in: tell whoever runs this server."
		default:
			r.Answer = "Not accepted, but not for the usual reason."
		}
		out = append(out, r)
	}
	return out, nil
}

// stolen runs the thief's attempts and shows them on the dashboard.
func (a *App) stolen(w http.ResponseWriter, r *http.Request) error {
	return a.signedIn(func(w http.ResponseWriter, r *http.Request, s *session, c *conn) error {
		res, err := a.thiefAttempts(r.Context(), s, c)
		if err != nil {
			return apiFailed(apiResponse{}, err)
		}
		s.stolen = res
		refused := 0
		for _, x := range res {
			if x.Refused {
				refused++
			}
		}
		text := "Replayed your access token without its key: refused every time."
		if refused < len(res) {
			text = "Replayed your access token without its key: it was not refused everywhere."
		}
		s.note(a.cfg.Now(), text, res[0].Detail)
		http.Redirect(w, r, "/dashboard#stolen", http.StatusSeeOther)
		return nil
	})(w, r)
}
