package resource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/keystep/keystep/idp/resource"
)

// An orders API: reading needs any login with the orders:read scope; placing
// an order needs mfa (or better) within the last 10 minutes; a large order
// needs a passkey, decided per request. DPoP-bound tokens are checked
// against proofs for https://orders.example.com/…, the API's public URL;
// adding resource.WithDPoPRequired() would refuse bearer tokens.
func ExampleVerifier_Require() {
	ctx := context.Background()
	v, err := resource.Open(ctx, "http://localhost:8080", resource.WithAudience("orders-api"),
		resource.WithPublicURL("https://orders.example.com"))
	if err != nil {
		log.Fatal(err)
	}

	list := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "orders of %s\n", c.Subject)
	})
	place := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFrom(r.Context())
		amount, _ := strconv.Atoi(r.FormValue("amount"))
		if amount > 10000 && c.ACR != "phr" && c.ACR != "phrh" {
			resource.Challenge(w, r, resource.Requirement{ACR: []string{"phr", "phrh"}}, "Large orders need a passkey")
			return
		}
		w.WriteHeader(http.StatusCreated)
	})

	mux := http.NewServeMux()
	mux.Handle("GET /orders", v.Require(resource.Requirement{Scope: []string{"orders:read"}}, list))
	mux.Handle("POST /orders", v.Require(resource.Requirement{
		ACR:    []string{"urn:keystep:acr:mfa", "phr", "phrh"},
		MaxAge: 10 * time.Minute,
		Scope:  []string{"orders:write"},
	}, place))
	log.Fatal(http.ListenAndServe("localhost:9000", mux))
}

// A client that got a step-up challenge sends the user back to the
// authorization endpoint with what the API asked for.
func ExampleParseChallenge() {
	h := `Bearer error="insufficient_user_authentication", error_description="Large orders need a passkey", acr_values="phr phrh", max_age=600`
	c, err := resource.ParseChallenge(h)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Error)
	fmt.Println(c.AuthorizeParams().Encode())
	// Output:
	// insufficient_user_authentication
	// acr_values=phr+phrh&max_age=600
}

// A payments API: the token must carry the payment the person approved
// (RFC 9396). RequireDetails reads the payment from the request body and
// checks that the token's authorization_details cover it; the handler
// still reads the body itself. A token approved for EUR 1,250 to Example
// Supplies Ltd cannot pay EUR 12,500, or pay anyone else.
func ExampleVerifier_RequireDetails() {
	v, err := resource.Open(context.Background(), "http://localhost:8080", resource.WithAudience("payments-api"))
	if err != nil {
		log.Fatal(err)
	}
	payment := func(r *http.Request) (map[string]any, error) {
		var p struct{ Amount, Currency, Creditor string }
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			return nil, errors.New("want a JSON payment")
		}
		return map[string]any{
			"type":             "payment_initiation",
			"instructedAmount": map[string]any{"amount": p.Amount, "currency": p.Currency},
			"creditorName":     p.Creditor,
		}, nil
	}
	pay := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body is here again; the payment is the approved one.
		w.WriteHeader(http.StatusCreated)
	})
	mux := http.NewServeMux()
	mux.Handle("POST /payments", v.Require(resource.Requirement{Scope: []string{"payments"}}, v.RequireDetails(payment, pay)))
	log.Fatal(http.ListenAndServe("localhost:9001", mux))
}

// A client refused for its authorization details starts a new
// authorization with exactly the details the API named.
func ExampleChallengeInfo_AuthorizeParams() {
	h := `Bearer error="insufficient_authorization_details", error_description="The access token's authorization_details do not cover this operation", authorization_details="W3sidHlwZSI6InBheW1lbnRfaW5pdGlhdGlvbiJ9XQ"`
	c, err := resource.ParseChallenge(h)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.AuthorizeParams().Get("authorization_details"))
	// Output:
	// [{"type":"payment_initiation"}]
}
