package resource

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ChallengeInfo is the Bearer or DPoP challenge of a WWW-Authenticate
// header (RFC 6750 §3, RFC 9449 §7.1), with the step-up parameters of RFC
// 9470 §3.
type ChallengeInfo struct {
	Scheme           string // as the server spelled it: "Bearer", "bearer", "DPoP", …
	Error            string
	ErrorDescription string
	ACRValues        []string // in the server's order of preference
	MaxAge           *int     // seconds; nil when absent
	Scope            []string
	Realm            string
	Algs             []string // DPoP only: the proof algorithms accepted
	// AuthorizationDetails is the JSON array of authorization details
	// (RFC 9396) the resource server needs for the operation, from an
	// insufficient_authorization_details challenge's authorization_details
	// parameter (base64url JSON); nil when absent. The client asks for a
	// new authorization with exactly these details.
	AuthorizationDetails json.RawMessage
}

// ParseChallenge reads the Bearer or DPoP challenge from a WWW-Authenticate
// value (RFC 7235 §4.1). The value may hold several challenges, as in
// `Basic realm="x", Bearer error="…"`; the first Bearer or DPoP one is
// returned.
// Scheme and parameter names match case-insensitively (RFC 7235 §2.1, §2.2);
// values are tokens or quoted-strings with \-escapes; unknown parameters are
// ignored. A malformed value, a repeated parameter, a max_age that is not a
// non-negative integer (RFC 9470 §3), or no Bearer challenge is an error.
// A response with several WWW-Authenticate fields can be read by joining
// them with ", " (RFC 7230 §3.2.2).
func ParseChallenge(header string) (ChallengeInfo, error) {
	cs, err := parseChallenges(header)
	if err != nil {
		return ChallengeInfo{}, err
	}
	for _, c := range cs {
		if !strings.EqualFold(c.scheme, "Bearer") && !strings.EqualFold(c.scheme, "DPoP") {
			continue
		}
		if c.token68 != "" {
			return ChallengeInfo{}, fmt.Errorf("resource: %s challenge with a token68 instead of auth-params", c.scheme)
		}
		info := ChallengeInfo{
			Scheme:           c.scheme,
			Error:            c.params["error"],
			ErrorDescription: c.params["error_description"],
			ACRValues:        fields(c.params["acr_values"]),
			Scope:            fields(c.params["scope"]),
			Realm:            c.params["realm"],
			Algs:             fields(c.params["algs"]),
		}
		if s, ok := c.params["authorization_details"]; ok {
			d, err := challengeDetails(s)
			if err != nil {
				return ChallengeInfo{}, err
			}
			info.AuthorizationDetails = d
		}
		if s, ok := c.params["max_age"]; ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || strings.TrimLeft(s, "0123456789") != "" {
				return ChallengeInfo{}, fmt.Errorf("resource: max_age %q is not a non-negative integer", s)
			}
			info.MaxAge = &n
		}
		return info, nil
	}
	return ChallengeInfo{}, errors.New("resource: no Bearer or DPoP challenge")
}

// AuthorizeParams returns acr_values, max_age and authorization_details,
// where the challenge has them, for the client's next authorization request
// (RFC 9470 §4, RFC 9396 §2).
func (c ChallengeInfo) AuthorizeParams() url.Values {
	v := url.Values{}
	if c.AuthorizationDetails != nil {
		v.Set("authorization_details", string(c.AuthorizationDetails))
	}
	if len(c.ACRValues) > 0 {
		v.Set("acr_values", strings.Join(c.ACRValues, " "))
	}
	if c.MaxAge != nil {
		v.Set("max_age", strconv.Itoa(*c.MaxAge))
	}
	return v
}

// challengeDetails decodes an authorization_details challenge parameter:
// base64url, padded or not, of a JSON array of objects.
func challengeDetails(s string) (json.RawMessage, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("resource: authorization_details is not base64url")
	}
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(b, &objs); err != nil || len(objs) == 0 || slices.ContainsFunc(objs, func(o map[string]json.RawMessage) bool { return o == nil }) {
		return nil, errors.New("resource: authorization_details is not a JSON array of objects")
	}
	return json.RawMessage(b), nil
}

func fields(s string) []string {
	if f := strings.Fields(s); len(f) > 0 {
		return f
	}
	return nil
}

type authChallenge struct {
	scheme  string
	token68 string
	params  map[string]string // by lower-case name
}

// parseChallenges parses RFC 7235 §4.1:
//
//	WWW-Authenticate = 1#challenge
//	challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param       = token BWS "=" BWS ( token / quoted-string )
//
// Commas separate both challenges and their parameters, so a token not
// followed by "=" after a comma starts the next challenge. Empty list
// elements are allowed (RFC 7230 §7).
func parseChallenges(s string) ([]authChallenge, error) {
	p := parser{s: s}
	var out []authChallenge
	for {
		p.skipListSep()
		if p.done() {
			break
		}
		c := authChallenge{scheme: p.token()}
		if c.scheme == "" {
			return nil, p.errorf("expected an auth-scheme")
		}
		spaced := p.skipSpace()
		if !p.done() && p.peek() != ',' {
			if !spaced {
				return nil, p.errorf("expected a space after the auth-scheme")
			}
			if t, ok := p.token68(); ok {
				c.token68 = t
			} else if err := p.params(&c); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("resource: empty WWW-Authenticate")
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) done() bool { return p.i >= len(p.s) }
func (p *parser) peek() byte { return p.s[p.i] }

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("resource: WWW-Authenticate at byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

// skipSpace skips OWS and reports whether there was any.
func (p *parser) skipSpace() bool {
	start := p.i
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
	return p.i > start
}

func (p *parser) skipListSep() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t' || p.peek() == ',') {
		p.i++
	}
}

// token reads an RFC 7230 §3.2.6 token; "" if there is none.
func (p *parser) token() string {
	start := p.i
	for !p.done() && isTChar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i]
}

// token68 reads a token68 if one stands alone before the end or a comma.
func (p *parser) token68() (string, bool) {
	j := p.i
	for j < len(p.s) && isToken68Char(p.s[j]) {
		j++
	}
	if j == p.i {
		return "", false
	}
	for j < len(p.s) && p.s[j] == '=' {
		j++
	}
	k := j
	for k < len(p.s) && (p.s[k] == ' ' || p.s[k] == '\t') {
		k++
	}
	if k < len(p.s) && p.s[k] != ',' {
		return "", false
	}
	t := p.s[p.i:j]
	p.i = j
	return t, true
}

// params reads the auth-params of c up to the end or the next challenge.
func (p *parser) params(c *authChallenge) error {
	c.params = map[string]string{}
	for {
		start := p.i
		name := p.token()
		if name == "" {
			return p.errorf("expected an auth-param")
		}
		p.skipSpace()
		if p.done() || p.peek() != '=' {
			if len(c.params) == 0 {
				return p.errorf("expected \"=\" after %q", name)
			}
			p.i = start // the next challenge's scheme
			return nil
		}
		p.i++
		p.skipSpace()
		var value string
		if !p.done() && p.peek() == '"' {
			v, err := p.quoted()
			if err != nil {
				return err
			}
			value = v
		} else if value = p.token(); value == "" {
			return p.errorf("expected a value for %q", name)
		}
		key := strings.ToLower(name)
		if _, dup := c.params[key]; dup {
			// RFC 7235 §2.2: each name at most once per challenge.
			return p.errorf("repeated parameter %q", name)
		}
		c.params[key] = value
		p.skipSpace()
		if p.done() {
			return nil
		}
		if p.peek() != ',' {
			return p.errorf("expected \",\" after parameter %q", name)
		}
		p.skipListSep()
		if p.done() {
			return nil
		}
	}
}

// quoted reads an RFC 7230 §3.2.6 quoted-string and returns it unescaped.
func (p *parser) quoted() (string, error) {
	p.i++ // the opening quote
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) || !isQuotedText(p.s[p.i+1]) && p.s[p.i+1] != '"' && p.s[p.i+1] != '\\' {
				return "", p.errorf("bad quoted-pair")
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case isQuotedText(c):
			b.WriteByte(c)
			p.i++
		default:
			return "", p.errorf("control character in quoted-string")
		}
	}
	return "", p.errorf("unterminated quoted-string")
}

// isQuotedText is qdtext: HTAB / SP / VCHAR but " and \ / obs-text.
func isQuotedText(c byte) bool {
	return c == '\t' || c >= 0x20 && c != 0x7f && c != '"' && c != '\\'
}

func isTChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0
}
