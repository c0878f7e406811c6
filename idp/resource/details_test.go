package resource_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/resource"
)

// approvedPayment is what a token carries after the person approved paying
// EUR 1,250 to Example Supplies Ltd.
const approvedPayment = `[{"type":"payment_initiation","actions":["initiate"],"instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"Example Supplies Ltd","creditorAccount":{"iban":"GB82WEST12345698765432"}}]`

func payment(amount string) map[string]any {
	return map[string]any{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": amount, "currency": "EUR"}, "creditorName": "Example Supplies Ltd"}
}

type coversCase struct {
	Name     string          `json:"name"`
	Approved json.RawMessage `json:"approved"`
	Want     json.RawMessage `json:"want"`
	Covers   bool            `json:"covers"`
}

func coversCases(t testing.TB) []coversCase {
	t.Helper()
	raw, err := os.ReadFile("../details/testdata/covers.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []coversCase }
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 10 {
		t.Fatalf("only %d cases in covers.json", len(file.Cases))
	}
	return file.Cases
}

func decodeWant(t testing.TB, raw []byte) (map[string]any, bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var w map[string]any
	if dec.Decode(&w) != nil || w == nil {
		return nil, false
	}
	return w, true
}

// TestCoversVectors runs the cases idp/details.Covers passes too.
func TestCoversVectors(t *testing.T) {
	for _, tc := range coversCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			want, _ := decodeWant(t, tc.Want)
			if got := (resource.Claims{AuthorizationDetails: tc.Approved}).Covers(want); got != tc.Covers {
				t.Errorf("Covers = %v, want %v", got, tc.Covers)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	c := resource.Claims{AuthorizationDetails: json.RawMessage(approvedPayment)}
	for _, tc := range []struct {
		name   string
		claims resource.Claims
		want   map[string]any
		covers bool
	}{
		{"Go values: the approved payment", c, payment("1250.00"), true},
		{"Go values: ten times the amount", c, payment("12500.00"), false},
		{"a float64 amount equals the approved decimal string", c, map[string]any{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": 1250.0}}, true},
		{"an int amount one off", c, map[string]any{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": 1251}}, false},
		{"a []string of actions", c, map[string]any{"type": "payment_initiation", "actions": []string{"initiate"}}, true},
		{"an action not approved", c, map[string]any{"type": "payment_initiation", "actions": []string{"cancel"}}, false},
		{"a type alone is covered by an object of the type", c, map[string]any{"type": "payment_initiation"}, true},
		{"a nil want covers nothing", c, nil, false},
		{"a value that is not JSON covers nothing", c, map[string]any{"type": "payment_initiation", "f": func() {}}, false},
		{"a token without details covers nothing", resource.Claims{}, payment("1250.00"), false},
		{"details that are not an array cover nothing", resource.Claims{AuthorizationDetails: json.RawMessage(`{"type":"payment_initiation"}`)}, map[string]any{"type": "payment_initiation"}, false},
		{"a number a double cannot hold is not compared", resource.Claims{AuthorizationDetails: json.RawMessage(`[{"type":"x","n":12345678901234567891}]`)}, map[string]any{"type": "x", "n": json.Number("12345678901234567891")}, false},
		{"a huge exponent is not compared", resource.Claims{AuthorizationDetails: json.RawMessage(`[{"type":"x","n":1e999999}]`)}, map[string]any{"type": "x", "n": json.Number("1e999999")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.claims.Covers(tc.want); got != tc.covers {
				t.Errorf("Covers = %v, want %v", got, tc.covers)
			}
		})
	}
}

// FuzzCoversMirror: whatever idp/details parses, the mirror answers as
// details.Covers does.
func FuzzCoversMirror(f *testing.F) {
	for _, tc := range coversCases(f) {
		f.Add(string(tc.Approved), string(tc.Want))
	}
	f.Add(`[{"type":"x","n":1e21,"s":"0.10"}]`, `{"type":"x","n":1000000000000000000000,"s":0.1}`)
	f.Fuzz(func(t *testing.T, approved, want string) {
		d, err := details.Parse(approved)
		if err != nil {
			return
		}
		w, ok := decodeWant(t, []byte(want))
		if !ok {
			return
		}
		mirror := resource.Claims{AuthorizationDetails: json.RawMessage(approved)}.Covers(w)
		if orig := details.Covers(d, w); mirror != orig {
			t.Fatalf("Covers(%s, %s): mirror %v, idp/details %v", approved, want, mirror, orig)
		}
	})
}

func TestRequireDetails(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithPublicURL(apiURL+"/"))
	var approved any
	_ = json.Unmarshal([]byte(approvedPayment), &approved)
	withDetails := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": approved}))
	plain := is.sign(t, "es-1", "at+jwt", is.claims(nil))
	alice := newHolder(t)
	bound := is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": approved, "cnf": map[string]any{"jkt": alice.jkt}}))
	u := apiURL + "/orders"

	big := `Bearer error="insufficient_authorization_details", error_description="The access token's authorization_details do not cover this operation", authorization_details="` + b64(t, payment("12500.00")) + `"`
	tests := []struct {
		name       string
		req        resource.Requirement
		auth       string
		proof      string
		wantStatus int
		wantHeader string
	}{
		{"the approved payment reaches the handler", resource.Requirement{Details: payment("1250.00")}, "Bearer " + withDetails, "", http.StatusNoContent, ""},
		{"ten times the amount is refused with the wanted details", resource.Requirement{Details: payment("12500.00")}, "Bearer " + withDetails, "", http.StatusForbidden, big},
		{"a token without details is refused", resource.Requirement{Details: payment("1250.00")}, "Bearer " + plain, "", http.StatusForbidden,
			`Bearer error="insufficient_authorization_details", error_description="The access token's authorization_details do not cover this operation", authorization_details="` + b64(t, payment("1250.00")) + `"`},
		{"no Details in the requirement checks none", resource.Requirement{}, "Bearer " + plain, "", http.StatusNoContent, ""},
		{"a step-up comes before the details", resource.Requirement{ACR: []string{"phr"}, Details: payment("12500.00")}, "Bearer " + withDetails, "", http.StatusUnauthorized,
			`Bearer error="insufficient_user_authentication", error_description="The access token's authentication context class is not accepted here", acr_values="phr"`},
		{"a DPoP-bound token is refused under the DPoP scheme", resource.Requirement{Details: payment("12500.00")}, "DPoP " + bound, alice.proof(t, "GET", u, bound, t0, nil), http.StatusForbidden,
			strings.Replace(big, "Bearer", "DPoP", 1) + `, algs="ES256 ES384 PS256 RS256 EdDSA"`},
		{"a DPoP-bound token with the approved payment passes", resource.Requirement{Details: payment("1250.00")}, "DPoP " + bound, alice.proof(t, "GET", u, bound, t0, nil), http.StatusNoContent, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ran := serveDPoP(t, v, tt.req, tt.auth, tt.proof)
			if w.Code != tt.wantStatus || ran != (tt.wantStatus == http.StatusNoContent) {
				t.Fatalf("status %d (handler ran %v), want %d; WWW-Authenticate %s", w.Code, ran, tt.wantStatus, w.Header().Get("WWW-Authenticate"))
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, tt.wantHeader)
			}
		})
	}
}

func b64(t *testing.T, want map[string]any) string {
	t.Helper()
	b, err := json.Marshal([]any{want})
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// payBody is the operation a POST /payments body describes.
func payBody(r *http.Request) (map[string]any, error) {
	var in struct {
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
		Creditor string `json:"creditor"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return nil, errors.New("the body is not a payment")
	}
	return map[string]any{"type": "payment_initiation", "instructedAmount": map[string]any{"amount": in.Amount, "currency": in.Currency}, "creditorName": in.Creditor}, nil
}

// RequireDetails reads the operation from the body, and the handler still
// reads the body itself; alone it verifies the token, inside Require it
// uses Require's claims.
func TestVerifierRequireDetails(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t)
	var approved any
	_ = json.Unmarshal([]byte(approvedPayment), &approved)
	tok := "Bearer " + is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": approved}))
	const ok = `{"amount":"1250.00","currency":"EUR","creditor":"Example Supplies Ltd"}`
	const tenfold = `{"amount":"12500.00","currency":"EUR","creditor":"Example Supplies Ltd"}`

	var body string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.WriteHeader(http.StatusNoContent)
	})
	for _, h := range []struct {
		name string
		h    http.Handler
	}{
		{"alone", v.RequireDetails(payBody, next)},
		{"inside Require", v.Require(resource.Requirement{Scope: []string{"orders:read"}}, v.RequireDetails(payBody, next))},
	} {
		t.Run(h.name, func(t *testing.T) {
			for _, tc := range []struct {
				name, auth, body string
				status           int
				challenge        string
			}{
				{"the approved payment", tok, ok, http.StatusNoContent, ""},
				{"ten times the amount", tok, tenfold, http.StatusForbidden, "insufficient_authorization_details"},
				{"no token", "", ok, http.StatusUnauthorized, ""},
				{"a body that is not a payment", tok, `[`, http.StatusBadRequest, ""},
				{"a body over 1 MiB", tok, `{"amount":"` + strings.Repeat("1", 1<<20) + `"}`, http.StatusRequestEntityTooLarge, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					body = ""
					r := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(tc.body))
					if tc.auth != "" {
						r.Header.Set("Authorization", tc.auth)
					}
					w := httptest.NewRecorder()
					h.h.ServeHTTP(w, r)
					if w.Code != tc.status {
						t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Header().Get("WWW-Authenticate"))
					}
					if tc.status == http.StatusNoContent && body != tc.body {
						t.Errorf("the handler read %q, want the whole body", body)
					}
					if tc.status != http.StatusNoContent && body != "" {
						t.Errorf("the handler ran")
					}
					if tc.challenge != "" {
						ch, err := resource.ParseChallenge(w.Header().Get("WWW-Authenticate"))
						if err != nil || ch.Error != tc.challenge {
							t.Fatalf("challenge %+v %v", ch, err)
						}
						var got []map[string]any
						if err := json.Unmarshal(ch.AuthorizationDetails, &got); err != nil || len(got) != 1 || !cmp.Equal(got[0], payment("12500.00")) {
							t.Errorf("challenge details %s", ch.AuthorizationDetails)
						}
					}
				})
			}
		})
	}
}

// A handler that learns the operation from its own body checks after
// reading it.
func TestCheckDetails(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t)
	var approved any
	_ = json.Unmarshal([]byte(approvedPayment), &approved)
	h := v.Require(resource.Requirement{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, err := payBody(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := resource.CheckDetails(r.Context(), want); errors.Is(err, resource.ErrInsufficientDetails) {
			resource.DetailsChallenge(w, r, want, "This payment was not approved")
			return
		} else if err != nil {
			t.Errorf("CheckDetails: %v", err)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	tok := "Bearer " + is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": approved}))
	for body, status := range map[string]int{
		`{"amount":"1250.00","currency":"EUR","creditor":"Example Supplies Ltd"}`:  http.StatusNoContent,
		`{"amount":"1250.00","currency":"EUR","creditor":"Example Supplies Ltd."}`: http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(body))
		r.Header.Set("Authorization", tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != status {
			t.Errorf("%s: status %d, want %d", body, w.Code, status)
		}
		if status == http.StatusForbidden && !strings.Contains(w.Header().Get("WWW-Authenticate"), `error_description="This payment was not approved"`) {
			t.Errorf("challenge %s", w.Header().Get("WWW-Authenticate"))
		}
	}
	// Outside Require there is no token to check: an error, not a refusal.
	if err := resource.CheckDetails(context.Background(), payment("1")); err == nil || errors.Is(err, resource.ErrInsufficientDetails) {
		t.Errorf("CheckDetails without claims = %v", err)
	}
}

// The challenge round trip: what DetailsChallenge writes, ParseChallenge
// reads back, and AuthorizeParams hands to the next authorization request
// as the authorization_details parameter, exactly the wanted details.
func TestDetailsChallengeRoundTrip(t *testing.T) {
	want := payment("12500.00")
	want["remittanceInformationUnstructured"] = `Invoice "2026-118" \ café`
	for _, tc := range []struct {
		name, auth, scheme string
	}{
		{"bearer", "Bearer x", "Bearer"},
		{"a DPoP request", "DPoP x", "DPoP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/payments", nil)
			r.Header.Set("Authorization", tc.auth)
			w := httptest.NewRecorder()
			resource.DetailsChallenge(w, r, want, "Approve the payment of EUR 12,500.00")
			if w.Code != http.StatusForbidden {
				t.Errorf("status %d, want 403", w.Code)
			}
			ch, err := resource.ParseChallenge(w.Header().Get("WWW-Authenticate"))
			if err != nil {
				t.Fatal(err)
			}
			if ch.Scheme != tc.scheme || ch.Error != "insufficient_authorization_details" || ch.ErrorDescription != "Approve the payment of EUR 12,500.00" {
				t.Errorf("challenge %+v", ch)
			}
			p := ch.AuthorizeParams()
			d, err := details.Parse(p.Get("authorization_details"))
			if err != nil {
				t.Fatalf("authorization_details %q does not parse as a request parameter: %v", p.Get("authorization_details"), err)
			}
			if len(d) != 1 || !details.Covers(d, want) || !(resource.Claims{AuthorizationDetails: ch.AuthorizationDetails}).Covers(want) {
				t.Errorf("the challenge's details %s are not the wanted ones", ch.AuthorizationDetails)
			}
			if p.Has("acr_values") || p.Has("max_age") {
				t.Errorf("params %v", p)
			}
		})
	}

	for _, bad := range []string{
		`Bearer error="insufficient_authorization_details", authorization_details="not base64!"`,
		`Bearer error="insufficient_authorization_details", authorization_details="` + base64.RawURLEncoding.EncodeToString([]byte(`{"type":"x"}`)) + `"`,
		`Bearer error="insufficient_authorization_details", authorization_details="` + base64.RawURLEncoding.EncodeToString([]byte(`[]`)) + `"`,
		`Bearer error="insufficient_authorization_details", authorization_details="` + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + `"`,
		`Bearer error="insufficient_authorization_details", authorization_details="` + base64.RawURLEncoding.EncodeToString([]byte(`[{"type":"x"}`)) + `"`,
	} {
		if _, err := resource.ParseChallenge(bad); err == nil {
			t.Errorf("ParseChallenge(%s) accepted it", bad)
		}
	}
	// Padding is tolerated.
	padded := base64.URLEncoding.EncodeToString([]byte(`[{"type":"x"}]`))
	if ch, err := resource.ParseChallenge(`Bearer authorization_details="` + padded + `"`); err != nil || string(ch.AuthorizationDetails) != `[{"type":"x"}]` {
		t.Errorf("padded: %s %v", ch.AuthorizationDetails, err)
	}
}

// Introspection carries the approved details too (RFC 9396 §9.2), and a
// token whose details are not an array is invalid.
func TestDetailsClaim(t *testing.T) {
	is := newIssuer(t)
	v, _ := is.open(t, resource.WithIntrospection(rsClientID, rsSecret))
	var approved any
	_ = json.Unmarshal([]byte(approvedPayment), &approved)
	is.setOpaque("opaque-rar", is.introspected(map[string]any{"authorization_details": approved}))
	is.setOpaque("opaque-bad", is.introspected(map[string]any{"authorization_details": "payment"}))
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"introspected", "opaque-rar", true},
		{"a JWT", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": approved})), true},
		{"introspected, not an array", "opaque-bad", false},
		{"a JWT, not an array", is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": map[string]any{"type": "x"}})), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), tc.token)
			if !tc.ok {
				if !errors.Is(err, resource.ErrInvalidToken) {
					t.Errorf("Verify = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.Covers(payment("1250.00")) || c.Covers(payment("12500.00")) {
				t.Errorf("claims %s", c.AuthorizationDetails)
			}
		})
	}
	c, err := v.Verify(t.Context(), is.sign(t, "es-1", "at+jwt", is.claims(map[string]any{"authorization_details": nil})))
	if err != nil || c.AuthorizationDetails != nil {
		t.Errorf("a token without details: %s %v", c.AuthorizationDetails, err)
	}
}
