package conformance

import (
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// DPoP proofs at the PAR endpoint (RFC 9449 §10.1): the proof's key binds
// the pushed request's code, as dpop_jkt does.

// pushWithProof pushes the fapi2 client's authorization request p with a
// fresh ES256 client assertion and proof in the DPoP header (none when "").
func pushWithProof(t *testing.T, e *env, keys clientKeys, p url.Values, proof string) (int, map[string]any, http.Header) {
	t.Helper()
	form := keys.assertion(t, e, fapiClient, jose.ES256)
	for k, v := range p {
		form[k] = v
	}
	return e.dpopPost("/oauth/par", form, protoAuth{id: fapiClient, method: "form"}, proof)
}

// pushDPoP pushes p with a proof by k, doing the nonce dance once when
// asked, and returns the request_uri.
func pushDPoP(t *testing.T, e *env, keys clientKeys, k *dpopKey, p url.Values) string {
	t.Helper()
	status, out, h := pushWithProof(t, e, keys, p, k.proof(http.MethodPost, "/oauth/par", "", nil))
	if status == http.StatusBadRequest && out["error"] == "use_dpop_nonce" {
		if k.nonce = h.Get("DPoP-Nonce"); k.nonce == "" {
			t.Fatal("use_dpop_nonce at PAR without a DPoP-Nonce header")
		}
		status, out, _ = pushWithProof(t, e, keys, p, k.proof(http.MethodPost, "/oauth/par", "", nil))
	}
	uri, _ := out["request_uri"].(string)
	if status != http.StatusCreated || uri == "" {
		t.Fatalf("PAR with a DPoP proof: %d %v", status, out)
	}
	return uri
}

// fapiCode runs the pushed request uri in a fresh browser to its code.
func fapiCode(t *testing.T, e *env, r *rp, a authRequest, uri string) string {
	t.Helper()
	b := e.browser()
	p := b.signIn(b.get(e.pushedURL(fapiClient, uri, nil)), alice, alicePass)
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	checkIss(t, e, p)
	return r.code(p, a)
}

func fapiCodeForm(t *testing.T, e *env, keys clientKeys, code, verifier string) url.Values {
	f := keys.assertion(t, e, fapiClient, jose.ES256)
	for k, v := range codeForm(code, verifier) {
		f[k] = v
	}
	return f
}

func TestDPoPProofAtPARBindsTheCode(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(fapiClient, "")
	key, other := e.newDPoPKey(), e.newDPoPKey()
	jwtAuth := protoAuth{id: fapiClient, method: "form"}

	t.Run("the proof's key becomes dpop_jkt and only it redeems the code", func(t *testing.T) {
		a, p := authParams(t, r, nil)
		// The first proof has no nonce: use_dpop_nonce, with the nonce.
		status, out, h := pushWithProof(t, e, keys, p, key.proof(http.MethodPost, "/oauth/par", "", nil))
		if status != http.StatusBadRequest || out["error"] != "use_dpop_nonce" || h.Get("DPoP-Nonce") == "" {
			t.Fatalf("proof without a nonce at PAR: %d %v, DPoP-Nonce %q", status, out, h.Get("DPoP-Nonce"))
		}
		uri := pushDPoP(t, e, keys, key, p)
		code := fapiCode(t, e, r, a, uri)
		other.nonce = key.nonce
		if status, body := other.token(fapiCodeForm(t, e, keys, code, a.verifier), jwtAuth); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("code pushed with one key redeemed with another: %d %v", status, body)
		}
		// The failed redemption spent the code (single use); a new one
		// redeems with the proof's key.
		a, p = authParams(t, r, nil)
		code = fapiCode(t, e, r, a, pushDPoP(t, e, keys, key, p))
		status, body := key.token(fapiCodeForm(t, e, keys, code, a.verifier), jwtAuth)
		if status != http.StatusOK || body["token_type"] != "DPoP" {
			t.Fatalf("code exchange with the proof's key: %d %v", status, body)
		}
		if _, claims := jwtParts(t, body["access_token"].(string)); cnfJKT(claims) != key.jkt {
			t.Errorf("cnf.jkt %q, want %q", cnfJKT(claims), key.jkt)
		}
	})
	t.Run("a code pushed with a proof does not redeem without one", func(t *testing.T) {
		a, p := authParams(t, r, nil)
		code := fapiCode(t, e, r, a, pushDPoP(t, e, keys, key, p))
		status, body, _ := e.dpopPost("/oauth/token", fapiCodeForm(t, e, keys, code, a.verifier), jwtAuth, "")
		if status != http.StatusBadRequest || (body["error"] != "invalid_grant" && body["error"] != "invalid_dpop_proof") {
			t.Fatalf("redeemed without a proof: %d %v", status, body)
		}
	})
	t.Run("dpop_jkt equal to the proof's thumbprint is accepted", func(t *testing.T) {
		a, p := authParams(t, r, url.Values{"dpop_jkt": {key.jkt}})
		code := fapiCode(t, e, r, a, pushDPoP(t, e, keys, key, p))
		if status, body := key.token(fapiCodeForm(t, e, keys, code, a.verifier), jwtAuth); status != http.StatusOK {
			t.Fatalf("%d %v", status, body)
		}
	})
	t.Run("dpop_jkt of another key beside a proof is invalid_dpop_proof and stores nothing", func(t *testing.T) {
		_, p := authParams(t, r, url.Values{"dpop_jkt": {other.jkt}})
		before := e.countPushed()
		status, out, _ := pushWithProof(t, e, keys, p, key.proof(http.MethodPost, "/oauth/par", "", nil))
		if status != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
			t.Fatalf("mismatched dpop_jkt: %d %v", status, out)
		}
		if e.countPushed() != before {
			t.Error("a refused pushed request was stored")
		}
	})
	t.Run("a bad proof is invalid_dpop_proof", func(t *testing.T) {
		_, p := authParams(t, r, nil)
		replayed := key.proof(http.MethodPost, "/oauth/par", "", nil)
		if status, out, _ := pushWithProof(t, e, keys, p, replayed); status != http.StatusCreated {
			t.Fatalf("first use: %d %v", status, out)
		}
		for name, proof := range map[string]string{
			"replayed":               replayed,
			"for the token endpoint": key.proof(http.MethodPost, "/oauth/token", "", nil),
			"for GET":                key.proof(http.MethodGet, "/oauth/par", "", nil),
			"with a bad signature":   replayed[:len(replayed)-4] + "AAAA",
		} {
			if status, out, _ := pushWithProof(t, e, keys, p, proof); status != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
				t.Errorf("%s proof at PAR: %d %v", name, status, out)
			}
		}
	})
}

// countPushed is the number of stored pushed requests.
func (e *env) countPushed() int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dbDir, "keystep.db")+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pushed_requests").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// A client asked for a DPoP nonce at PAR retries with the request it had:
// the same signed request object is accepted on the retry, since the
// proof is checked before the object's jti is spent.
func TestDPoPNonceRetryAtPARKeepsTheRequestObject(t *testing.T) {
	e, keys := parEnv(t)
	r := e.rp(fapiClient, "")
	key := e.newDPoPKey()
	a, p := authParams(t, r, nil)
	obj := url.Values{"request": {keys.sign(t, jose.ES256, requestObject(e, fapiClient, p), nil)}, "client_id": {fapiClient}}
	status, out, h := pushWithProof(t, e, keys, obj, key.proof(http.MethodPost, "/oauth/par", "", nil))
	if status != http.StatusBadRequest || out["error"] != "use_dpop_nonce" {
		t.Fatalf("first push: %d %v", status, out)
	}
	key.nonce = h.Get("DPoP-Nonce")
	status, out, _ = pushWithProof(t, e, keys, obj, key.proof(http.MethodPost, "/oauth/par", "", nil))
	uri, _ := out["request_uri"].(string)
	if status != http.StatusCreated || uri == "" {
		t.Fatalf("the retry with the nonce and the same request object: %d %v", status, out)
	}
	code := fapiCode(t, e, r, a, uri)
	if status, body := key.token(fapiCodeForm(t, e, keys, code, a.verifier), protoAuth{id: fapiClient, method: "form"}); status != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("code exchange: %d %v", status, body)
	}
}
