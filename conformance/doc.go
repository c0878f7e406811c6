// Package conformance holds Keystep's black-box end-to-end tests: each acts
// as a real relying party (github.com/coreos/go-oidc + golang.org/x/oauth2,
// a cookie jar and the HTML forms) against idp.NewServer. Tests are named
// after the OpenID conformance module they mirror where one exists.
package conformance
