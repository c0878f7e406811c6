// Package keystep is an OpenID Connect provider with acr-based step-up
// authentication. The server lives in package idp; the command in
// cmd/keystep. This package holds repository-wide tests only.
package keystep
