package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"html"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost
// with this serial to certFile and keyFile, replacing them the way a
// renewal does (a new file renamed over the old), and returns it.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "keystep test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: pk}} {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// servedSerial is the serial of the certificate a new TLS connection to
// addr gets, trusting pool.
func servedSerial(t *testing.T, addr string, pool *x509.CertPool) (int64, string) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return -1, err.Error()
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return st.PeerCertificates[0].SerialNumber.Int64(), st.NegotiatedProtocol
}

// signInRP signs alice in at issuer as the client id/secret with go-oidc
// and x/oauth2, over client, and returns the ID token's claims.
func signInRP(t *testing.T, issuer string, client *http.Client, id, secret string) map[string]any {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), client)
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{ClientID: id, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: "https://rp.example/cb", Scopes: []string{oidc.ScopeOpenID}}
	state, nonce, verifier := "st-"+oauth2.GenerateVerifier()[:8], "n-"+oauth2.GenerateVerifier()[:8], oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: client.Transport, Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(r.URL.String(), issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	hidden := func(body, name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in\n%.2000s", name, body)
		}
		return html.UnescapeString(m[1])
	}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = browser.PostForm(issuer+"/login/password", url.Values{"id": {hidden(string(body), "id")}, "username": {"alice"}, "password": {strings.TrimSpace(testPassword)}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `action="/login/consent"`) {
		resp, err = browser.PostForm(issuer+"/login/consent", url.Values{"id": {hidden(string(body), "id")}, "decision": {"allow"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != state {
		t.Fatalf("no code at the RP: %d %q\n%.2000s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: id, SupportedSigningAlgs: []string{"RS256", "ES256", "EdDSA"}}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims["nonce"] != nonce {
		t.Fatalf("nonce %v, want %s", claims["nonce"], nonce)
	}
	return claims
}

// serve --tls-cert/--tls-key serves the https issuer a real RP signs in
// at, and a certificate renewed on disk is served to new connections
// without a restart, by the file watch and by SIGHUP; an open connection
// keeps working meanwhile.
func TestServeTLSSignInAndCertificateReload(t *testing.T) {
	prevPoll := certPollEvery
	certPollEvery = 20 * time.Millisecond
	t.Cleanup(func() { certPollEvery = prevPoll })
	hup := make(chan os.Signal, 1)
	prevHup := hangups
	hangups = func() (<-chan os.Signal, func()) { return hup, func() {} }
	t.Cleanup(func() { hangups = prevHup })

	d := t.TempDir()
	createUser(t, d, "alice")
	rp := createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	certFile, keyFile := filepath.Join(d, "tls.crt"), filepath.Join(d, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)
	s := startLive(t, "--data", d, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("issuer %s, want https", s.url)
	}
	addr := strings.TrimPrefix(s.url, "https://")

	pool := x509.NewCertPool()
	pool.AddCert(first)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	client := &http.Client{Transport: tr}
	claims := signInRP(t, s.url, client, rp.ID, rp.Secret)
	if claims["iss"] != s.url || claims["acr"] == "" {
		t.Errorf("claims %v", claims)
	}
	resp, err := client.Get(s.url + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
		t.Errorf("HSTS %q", got)
	}
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 was accepted")
	}

	// Renewed on disk: the watch picks it up.
	second := writeCert(t, certFile, keyFile, 2)
	pool.AddCert(second)
	waitSerial := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, proto := servedSerial(t, addr, pool)
			if got == want {
				if proto != "h2" {
					t.Errorf("ALPN %q, want h2", proto)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("serial %d (%s), want %d", got, proto, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitSerial(2)
	// The connection opened under the first certificate still works, and
	// so does a sign-in on new ones.
	resp, err = client.Get(s.url + "/keys")
	if err != nil {
		t.Fatalf("the open connection broke: %v", err)
	}
	resp.Body.Close()
	signInRP(t, s.url, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, rp.ID, rp.Secret)

	// A broken renewal keeps the served certificate.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	waitSerial(2)

	// SIGHUP reloads at once, without the watch: a server whose watch
	// would wait an hour still serves the new certificate.
	s.stop()
	certPollEvery = time.Hour
	pool.AddCert(writeCert(t, certFile, keyFile, 3))
	s = startLive(t, "--data", d, "--tls-cert", certFile, "--tls-key", keyFile)
	addr = strings.TrimPrefix(s.url, "https://")
	waitSerial(3)
	pool.AddCert(writeCert(t, certFile, keyFile, 4))
	time.Sleep(100 * time.Millisecond)
	if got, _ := servedSerial(t, addr, pool); got != 3 {
		t.Fatalf("serial %d before SIGHUP, want 3 (the watch should be asleep)", got)
	}
	hup <- syscall.SIGHUP
	waitSerial(4)
}
