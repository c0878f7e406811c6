package resource

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keystep/keystep/idp/dpop"
)

// introspection is an RFC 7662 §2.2 response with the RFC 9470 §6.2 members.
type introspection struct {
	Active    bool             `json:"active"`
	Scope     spaceList        `json:"scope"`
	ClientID  string           `json:"client_id"`
	Subject   string           `json:"sub"`
	Issuer    string           `json:"iss"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	TokenType string           `json:"token_type"`
	ACR       string           `json:"acr"`
	AMR       []string         `json:"amr"`
	AuthTime  *jwt.NumericDate `json:"auth_time"`
	SessionID string           `json:"sid"`
	Cnf       *confirmation    `json:"cnf"`
	// AuthorizationDetails is RFC 9396 §9.2's member.
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
}

// introspect asks the issuer about token (RFC 7662 §2.1). Only a response
// the issuer gave counts against the token; a failed call is not
// ErrInvalidToken, since the token may well be good.
func (v *Verifier) introspect(ctx context.Context, token string) (Claims, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.introspectURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Claims{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client_secret_basic form-encodes id and secret first.
	req.SetBasicAuth(url.QueryEscape(v.clientID), url.QueryEscape(v.secret))
	var in introspection
	if err := v.do(req, &in); err != nil {
		return Claims{}, err
	}
	switch {
	case !in.Active:
		return Claims{}, invalid("inactive")
	case in.Issuer != "" && in.Issuer != v.issuer:
		return Claims{}, invalid("iss %q", in.Issuer)
	case in.TokenType != "" && !strings.EqualFold(in.TokenType, "Bearer") && !strings.EqualFold(in.TokenType, dpop.Scheme):
		return Claims{}, invalid("token_type %q", in.TokenType)
	case in.Cnf != nil && !dpop.ValidJKT(in.Cnf.JKT):
		return Claims{}, invalid("cnf without a valid jkt")
	case strings.EqualFold(in.TokenType, dpop.Scheme) && in.Cnf == nil:
		return Claims{}, invalid("a DPoP token without cnf")
	case in.Expiry != nil && v.now().Add(-leeway).After(in.Expiry.Time()):
		return Claims{}, invalid("expired")
	case v.audience != "" && !in.Audience.Contains(v.audience):
		return Claims{}, invalid("aud %q lacks %q", in.Audience, v.audience)
	}
	c := Claims{
		Subject:   in.Subject,
		ClientID:  in.ClientID,
		ACR:       in.ACR,
		SessionID: in.SessionID,
		AMR:       in.AMR,
		Scope:     in.Scope,
	}
	if in.Expiry != nil {
		c.Expiry = in.Expiry.Time()
	}
	if in.AuthTime != nil {
		c.AuthTime = in.AuthTime.Time()
	}
	if in.Cnf != nil {
		c.JKT = in.Cnf.JKT // RFC 9449 §6.2
	}
	if c.AuthorizationDetails, err = detailsClaim(in.AuthorizationDetails); err != nil {
		return Claims{}, err
	}
	return c, nil
}
