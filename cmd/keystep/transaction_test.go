package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

const txIssuer = "https://login.example"

// txApproval is a passkey approval of a payment as login records it: the
// details, the nonce, and an assertion signed by the stored credential.
type txApproval struct {
	d                                details.Details
	nonce, clientData, authData, sig []byte
	uv                               string
}

// txSetup is a data folder with alice and her passkey, and an approval by
// that passkey; record writes approvals (edited or not) to its log.
func txSetup(t *testing.T) (data string, good txApproval, record func(a txApproval, method string) int64) {
	t.Helper()
	data = t.TempDir()
	alice := createUser(t, data, "alice")
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	credID := make([]byte, 32)
	_, _ = rand.Read(credID)
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := json.Marshal(webauthn.Credential{ID: credID, PublicKey: cose})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	withStore(t, data, func(st storage.Store) {
		if err := st.CreateFactor(t.Context(), storage.Factor{ID: "f-key", UserID: alice.ID, Kind: storage.FactorWebAuthn, Name: "Laptop", Secret: secret, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	})

	good.d, err = details.Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"1250.00","currency":"EUR"},"creditorName":"Example Supplies Ltd"}]`)
	if err != nil {
		t.Fatal(err)
	}
	good.nonce = make([]byte, 32)
	_, _ = rand.Read(good.nonce)
	good.clientData, _ = json.Marshal(map[string]any{"type": "webauthn.get", "challenge": b64url.EncodeToString(details.Challenge(good.d, good.nonce)), "origin": txIssuer, "crossOrigin": false})
	rp := sha256.Sum256([]byte("login.example"))
	good.authData = binary.BigEndian.AppendUint32(append(rp[:], 0x01|0x04), 7) // UP, UV
	cdHash := sha256.Sum256(good.clientData)
	digest := sha256.Sum256(append(slices.Clone(good.authData), cdHash[:]...))
	if good.sig, err = ecdsa.SignASN1(rand.Reader, priv, digest[:]); err != nil {
		t.Fatal(err)
	}
	good.uv = "required"

	key, err := storage.NewAuditKey(readMasterKey(t, data))
	if err != nil {
		t.Fatal(err)
	}
	record = func(a txApproval, method string) int64 {
		t.Helper()
		hash := a.d.Hash()
		det := map[string]string{
			"auth_request": "ar-1", "authorization_details": a.d.String(), "details_hash": b64url.EncodeToString(hash[:]),
			"method": method, "committed": "false", "acr": "phr",
		}
		if method == "webauthn" {
			det["committed"] = "true"
			for k, v := range map[string][]byte{"nonce": a.nonce, "client_data_json": a.clientData, "authenticator_data": a.authData, "signature": a.sig, "credential_id": credID} {
				det[k] = b64url.EncodeToString(v)
			}
			det["factor_id"], det["user_verification"] = "f-key", a.uv
		}
		var seq int64
		withStore(t, data, func(st storage.Store) {
			au := &web.Auditor{Store: st, Key: key, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
			if err := au.Record(t.Context(), storage.AuditEvent{Type: storage.EventStepUpTransaction, UserID: alice.ID, ActorID: alice.ID, ClientID: "app", Outcome: "success", Details: det}); err != nil {
				t.Fatal(err)
			}
			evs, err := st.ListAudit(t.Context(), storage.AuditFilter{Type: storage.EventStepUpTransaction, Newest: true, Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("the row just written: %v %v", evs, err)
			}
			seq = evs[0].Seq
		})
		return seq
	}
	return data, good, record
}

func verifyTx(t *testing.T, data string, seq int64, extra ...string) result {
	t.Helper()
	return keystep(t, "", append([]string{"audit", "verify", "--transaction", strconv.FormatInt(seq, 10), "--data", data}, extra...)...)
}

func TestAuditVerifyTransaction(t *testing.T) {
	t.Run("a passkey approval verifies", func(t *testing.T) {
		data, good, record := txSetup(t)
		seq := record(good, "webauthn")
		r := verifyTx(t, data, seq, "--issuer", txIssuer)
		if r.code != 0 || !strings.Contains(r.stdout, "verified") || !strings.Contains(r.stdout, "the signature verifies") || !strings.Contains(r.stdout, `"amount":"1250.00"`) {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		var rep transactionReport
		if err := json.Unmarshal([]byte(verifyTx(t, data, seq, "--issuer", txIssuer, "--json").stdout), &rep); err != nil || !rep.OK || !rep.Committed || len(rep.Checks) != 5 {
			t.Fatalf("--json: %+v %v", rep, err)
		}
	})

	edited := func(edit func(*txApproval)) func(txApproval) txApproval {
		return func(a txApproval) txApproval { edit(&a); return a }
	}
	for _, tt := range []struct {
		name string
		edit func(txApproval) txApproval
		want string
	}{
		{"other details (EUR 12,500) with the same assertion fail", edited(func(a *txApproval) {
			a.d, _ = details.Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"12500.00","currency":"EUR"},"creditorName":"Example Supplies Ltd"}]`)
		}), "not the one derived from these details"},
		{"another nonce fails", edited(func(a *txApproval) { a.nonce = slices.Repeat([]byte{1}, 32) }), "not the one derived from these details"},
		{"a changed signature fails", edited(func(a *txApproval) { a.sig = slices.Clone(a.sig); a.sig[len(a.sig)-1] ^= 1 }), "signature does not verify"},
		{"an authenticator that did not verify the user fails where it was required", edited(func(a *txApproval) { a.authData = slices.Clone(a.authData); a.authData[32] = 0x01 }), "user verification"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, good, record := txSetup(t)
			seq := record(tt.edit(good), "webauthn")
			wantExit(t, verifyTx(t, data, seq, "--issuer", txIssuer), 1, tt.want)
		})
	}

	t.Run("an approval checked against another issuer fails", func(t *testing.T) {
		data, good, record := txSetup(t)
		wantExit(t, verifyTx(t, data, record(good, "webauthn"), "--issuer", "https://evil.example"), 1, "origin")
	})

	t.Run("a row edited in the database fails the chain", func(t *testing.T) {
		data, good, record := txSetup(t)
		seq := record(good, "webauthn")
		if _, err := rawDB(t, data).ExecContext(t.Context(), `UPDATE audit_events SET details = replace(details, '1250.00', '125.00') WHERE seq = ?`, seq); err != nil {
			t.Fatal(err)
		}
		wantExit(t, verifyTx(t, data, seq, "--issuer", txIssuer), 1, "audit chain is broken")
	})

	t.Run("a code approval is intact but cannot be verified cryptographically", func(t *testing.T) {
		data, good, record := txSetup(t)
		r := verifyTx(t, data, record(good, "totp"))
		wantExit(t, r, exitNotCommitted, "cannot be verified cryptographically")
	})

	t.Run("a row of another type is refused", func(t *testing.T) {
		data, _, _ := txSetup(t)
		wantExit(t, verifyTx(t, data, 1, "--issuer", txIssuer), 1, "not stepup.transaction")
	})
}
