package idp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// A refresh token is "family.generation.mac": it names its family (one
// storage row, storage.Family) and generation, and the MAC, keyed from the
// master key, proves Keystep issued it. No secret is stored, and the token
// of a generation can be made again: a client that retries within its
// reuse interval gets the very successor it missed (a crash between the
// rotation and the response, or parallel refreshes with one token).
// Refresh tokens issued before families have no dot (storage.RefreshToken).
type refreshMinter struct{ key []byte }

func newRefreshMinter(masterKey []byte) refreshMinter {
	m := hmac.New(sha256.New, masterKey)
	m.Write([]byte("keystep refresh token v1"))
	return refreshMinter{key: m.Sum(nil)}
}

func (r refreshMinter) mac(family string, gen int64) []byte {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(family + "." + strconv.FormatInt(gen, 10)))
	return m.Sum(nil)
}

// token is the refresh token of generation gen of family.
func (r refreshMinter) token(family string, gen int64) string {
	return family + "." + strconv.FormatInt(gen, 10) + "." + base64.RawURLEncoding.EncodeToString(r.mac(family, gen))
}

// parse returns the family and generation token names, if its MAC is
// right; ok is false for anything else, pre-family tokens included.
func (r refreshMinter) parse(token string) (family string, gen int64, ok bool) {
	family, rest, ok := strings.Cut(token, ".")
	if !ok || family == "" {
		return "", 0, false
	}
	g, sum, ok := strings.Cut(rest, ".")
	if !ok {
		return "", 0, false
	}
	gen, err := strconv.ParseInt(g, 10, 64)
	if err != nil || gen < 0 || strconv.FormatInt(gen, 10) != g {
		return "", 0, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sum)
	if err != nil || !hmac.Equal(mac, r.mac(family, gen)) {
		return "", 0, false
	}
	return family, gen, true
}

// newFamilyID names a new family: 132 random bits, no dot.
func newFamilyID() (string, error) { return newTokenID() }

// A JWT access token has no row: its jti is "family.random", naming the
// family it was issued with, or ".random" for client credentials, which
// have none. Opaque access tokens and JWTs issued before families keep a
// row and an ID without a dot.
func newJWTID(family string) (string, error) {
	id, err := newTokenID()
	if err != nil {
		return "", err
	}
	return family + "." + id, nil
}

// jwtFamily returns the family a rowless access token's ID names; ok is
// false for an ID with a row.
func jwtFamily(id string) (family string, ok bool) {
	family, _, ok = strings.Cut(id, ".")
	return family, ok
}
