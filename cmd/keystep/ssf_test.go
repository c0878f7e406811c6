package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystep/keystep/storage"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"tx1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func TestSSFReceiversAddListDelete(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "tx.jwks")
	if err := os.WriteFile(f, []byte(testJWKS), 0o600); err != nil {
		t.Fatal(err)
	}
	r := keystep(t, "", "ssf", "receivers", "add", "--issuer", "https://edr.example", "--jwks-file", f, "--audience", "https://id.example", "--data", d)
	wantExit(t, r, 0)
	r = keystep(t, "", "ssf", "receivers", "add", "--issuer", "https://idp.example", "--jwks-uri", "https://idp.example/jwks", "--audience", "https://id.example", "--data", d)
	wantExit(t, r, 0)
	// Refused, and nothing stored: no keys, both kinds, plain http, a private key, a repeat.
	for _, bad := range [][]string{
		{"--issuer", "https://a.example", "--audience", "x"},
		{"--issuer", "https://a.example", "--jwks-uri", "https://a.example/k", "--jwks-file", f, "--audience", "x"},
		{"--issuer", "http://a.example", "--jwks-uri", "https://a.example/k", "--audience", "x"},
		{"--issuer", "https://a.example", "--jwks-uri", "https://a.example/k"},
		{"--issuer", "https://edr.example", "--jwks-uri", "https://a.example/k", "--audience", "x"},
	} {
		r := keystep(t, "", append([]string{"ssf", "receivers", "add", "--data", d}, bad...)...)
		if r.code == 0 {
			t.Errorf("%v was accepted", bad)
		}
	}
	r = keystep(t, "", "ssf", "receivers", "list", "--data", d)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "https://edr.example") || !strings.Contains(r.stdout, "(JWKS stored)") || !strings.Contains(r.stdout, "https://idp.example/jwks") || strings.Contains(r.stdout, "a.example") {
		t.Errorf("list:\n%s", r.stdout)
	}
	wantExit(t, keystep(t, "", "ssf", "receivers", "delete", "https://idp.example", "--data", d), 0)
	wantExit(t, keystep(t, "", "ssf", "receivers", "delete", "https://idp.example", "--data", d), 1)
	withStore(t, d, func(st storage.Store) {
		rs, err := st.ListReceivers(t.Context())
		if err != nil || len(rs) != 1 || rs[0].Issuer != "https://edr.example" || rs[0].JWKS != testJWKS {
			t.Errorf("stored: %+v %v", rs, err)
		}
	})
	log := auditLog(t, d)
	if !hasEvent(log, storage.EventAdminSSFReceiverAdded, "", "") || !hasEvent(log, storage.EventAdminSSFReceiverDeleted, "", "") {
		t.Error("not audited")
	}
}
