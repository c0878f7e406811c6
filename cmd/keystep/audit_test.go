package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/storage"
)

// plainHash is the audit chain's first, unkeyed scheme: SHA-256 over a JSON
// array of the row's fields. Anyone who reads the source can compute it, so
// it is what an attacker with write access to the database (and not the
// master key) recomputes after an edit.
func plainHash(prev string, e storage.AuditEvent) string {
	canon, err := json.Marshal([]any{prev, strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format(time.RFC3339Nano),
		e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent, e.Outcome, e.Reason, e.Details})
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// auditRows reads the whole log behind the CLI's back.
func auditRows(t *testing.T, data string) []storage.AuditEvent {
	t.Helper()
	var events []storage.AuditEvent
	withStore(t, data, func(st storage.Store) {
		var err error
		if events, err = st.ListAudit(t.Context(), storage.AuditFilter{}); err != nil {
			t.Fatal(err)
		}
	})
	return events
}

// rewriteAudit edits the log as someone with write access to the database
// but not the master key would: rows from through to pass through edit,
// then get their links and hashes recomputed with plainHash, and the row
// after them is pointed at the new hash, so every row still points at the
// one before it.
func rewriteAudit(t *testing.T, data string, from, to int64, edit func(*storage.AuditEvent)) {
	t.Helper()
	events := auditRows(t, data)
	prev := ""
	if from > 1 {
		prev = events[from-2].Hash
	}
	db := rawDB(t, data)
	for _, e := range events[from-1 : to] {
		edit(&e)
		e.PrevHash, e.Hash = prev, plainHash(prev, e)
		if _, err := db.ExecContext(t.Context(), `UPDATE audit_events SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
			e.Reason, e.PrevHash, e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
	if _, err := db.ExecContext(t.Context(), `UPDATE audit_events SET prev_hash = ? WHERE seq = ?`, prev, to+1); err != nil {
		t.Fatal(err)
	}
}

// verifyJSON is `audit verify --json`.
type verifyJSON struct {
	OK         bool   `json:"ok"`
	Rows       int    `json:"rows"`
	Error      string `json:"error"`
	Unkeyed    int64  `json:"unkeyed_rows"`
	Checkpoint *struct {
		Seq   int64  `json:"seq"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"checkpoint"`
}

func verifyOut(t *testing.T, r result) verifyJSON {
	t.Helper()
	var out verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}
	return out
}

// threeRows is a data folder whose log has three rows written by the CLI,
// after a server start made the signing keys.
func threeRows(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	startServerCode(t, d)
	createUser(t, d, "alice")
	createUser(t, d, "bob")
	mustKeystep(t, "", "users", "unlock", "bob", "--data", d)
	return d
}

// DESIGN §7: the chain is keyed with the master key, so a database writer
// cannot rewrite it consistently.
func TestAuditVerifyRefusesAChainRecomputedWithoutTheMasterKey(t *testing.T) {
	tests := []struct {
		name string
		from int64
		want []string
	}{
		{"row 2 edited, rows 2 and 3 re-hashed with plain SHA-256", 2, []string{"row 2"}},
		{"row 2 edited, every row re-hashed with plain SHA-256", 1, []string{"keyed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" fails verification", func(t *testing.T) {
			d := threeRows(t)
			mustKeystep(t, "", "audit", "verify", "--data", d)
			rewriteAudit(t, d, tt.from, 3, func(e *storage.AuditEvent) {
				if e.Seq == 2 {
					e.Reason = "nothing to see"
				}
			})
			// The rewrite is consistent: every link holds.
			events := auditRows(t, d)
			for i := 1; i < len(events); i++ {
				if events[i].PrevHash != events[i-1].Hash {
					t.Fatalf("rewrite broke the link at row %d", events[i].Seq)
				}
			}
			wantExit(t, keystep(t, "", "audit", "verify", "--data", d), 1, append([]string{"audit chain broken"}, tt.want...)...)
			r := keystep(t, "", "audit", "verify", "--json", "--data", d)
			wantExit(t, r, 1)
			if out := verifyOut(t, r); out.OK || out.Error == "" {
				t.Errorf("verify --json = %+v, want not ok with an error", out)
			}
		})
	}
	t.Run("a rewrite that keeps the keyed rows' format fails verification", func(t *testing.T) {
		d := threeRows(t)
		events := auditRows(t, d)
		marker, _, ok := strings.Cut(events[1].Hash, ":")
		if !ok {
			t.Fatalf("row 2's hash %q names no scheme", events[1].Hash)
		}
		db := rawDB(t, d)
		e := events[1]
		e.Reason = "nothing to see"
		forged := marker + ":" + plainHash(e.PrevHash, e)
		if _, err := db.ExecContext(t.Context(), `UPDATE audit_events SET reason = ?, hash = ? WHERE seq = 2`, e.Reason, forged); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), `UPDATE audit_events SET prev_hash = ? WHERE seq = 3`, forged); err != nil {
			t.Fatal(err)
		}
		wantExit(t, keystep(t, "", "audit", "verify", "--data", d), 1, "row 2")
	})
}

// checkpoint runs `audit checkpoint` and returns the signed checkpoint.
func checkpoint(t *testing.T, data string) string {
	t.Helper()
	r := mustKeystep(t, "", "audit", "checkpoint", "--data", data)
	cp := strings.TrimSpace(r.stdout)
	if strings.Count(cp, ".") != 2 || strings.ContainsAny(cp, " \n") {
		t.Fatalf("audit checkpoint printed %q, want one compact JWS", r.stdout)
	}
	return cp
}

// DESIGN §7: a checkpoint kept elsewhere detects a log cut short.
func TestAuditVerifyWithACheckpointDetectsDeletedNewestRows(t *testing.T) {
	d := threeRows(t)
	cp := checkpoint(t, d)
	var cpJSON struct {
		Seq        int64  `json:"seq"`
		Hash       string `json:"hash"`
		Checkpoint string `json:"checkpoint"`
	}
	r := mustKeystep(t, "", "audit", "checkpoint", "--json", "--data", d)
	if err := json.Unmarshal([]byte(r.stdout), &cpJSON); err != nil || cpJSON.Seq != 3 || cpJSON.Checkpoint == "" {
		t.Fatalf("audit checkpoint --json = %s (%v), want seq 3 and the checkpoint", r.stdout, err)
	}
	if events := auditRows(t, d); cpJSON.Hash != events[2].Hash {
		t.Errorf("checkpoint hash %s, want row 3's %s", cpJSON.Hash, events[2].Hash)
	}
	// The operator keeps it elsewhere, one line per checkpoint; the last line counts.
	file := filepath.Join(t.TempDir(), "checkpoints")
	if err := os.WriteFile(file, []byte("not even a checkpoint\n"+cp+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustKeystep(t, "", "users", "enable", "bob", "--data", d) // row 4, after the checkpoint

	for _, arg := range []string{cp, file, r.stdout} {
		r := mustKeystep(t, "", "audit", "verify", "--checkpoint", arg, "--data", d)
		if !strings.Contains(r.stdout, "audit chain intact: 4 rows") || !strings.Contains(r.stdout, "checkpoint at row 3") {
			t.Errorf("verify --checkpoint:\n%s", r.stdout)
		}
	}

	// Someone deletes the newest rows, 3 and 4. What is left still chains up…
	if _, err := rawDB(t, d).ExecContext(t.Context(), `DELETE FROM audit_events WHERE seq >= 3`); err != nil {
		t.Fatal(err)
	}
	r = mustKeystep(t, "", "audit", "verify", "--data", d)
	if !strings.Contains(r.stdout, "audit chain intact: 2 rows") {
		t.Errorf("verify without a checkpoint:\n%s", r.stdout)
	}
	// …but not to the checkpoint.
	wantExit(t, keystep(t, "", "audit", "verify", "--checkpoint", file, "--data", d), 1, "row 3", "deleted")
	r = keystep(t, "", "audit", "verify", "--checkpoint", cp, "--json", "--data", d)
	wantExit(t, r, 1)
	if out := verifyOut(t, r); out.OK || out.Checkpoint == nil || out.Checkpoint.OK || out.Checkpoint.Seq != 3 || !strings.Contains(out.Error, "deleted") {
		t.Errorf("verify --json = %+v, want not ok at the checkpoint's row 3", out)
	}
}

// A checkpoint is only as good as its signature: one the server did not
// sign is refused (exit 3), whatever the log says.
func TestAuditVerifyRefusesAForgedCheckpoint(t *testing.T) {
	d := threeRows(t)
	cp := checkpoint(t, d)
	header, payload, _ := strings.Cut(cp, ".")
	payload, sig, _ := strings.Cut(payload, ".")
	var claims map[string]any
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		KID string `json:"kid"`
		Typ string `json:"typ"`
	}
	raw, _ = base64.RawURLEncoding.DecodeString(header)
	if err := json.Unmarshal(raw, &hdr); err != nil || hdr.KID == "" {
		t.Fatalf("checkpoint header %s (%v): want a kid", raw, err)
	}

	// Claims claiming an earlier row, so that a cut log would pass.
	earlier := map[string]any{}
	for k, v := range claims {
		earlier[k] = v
	}
	earlier["seq"] = 2
	earlier["hash"] = auditRows(t, d)[1].Hash
	earlierJSON, _ := json.Marshal(earlier)

	attackerKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(kid string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: attackerKey, KeyID: kid}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(hdr.Typ)))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := s.Sign(earlierJSON)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// An attacker with the database can publish a public key of their own;
	// without the master key they cannot seal the private key beside it.
	pub, err := x509.MarshalPKIXPublicKey(attackerKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, d).ExecContext(t.Context(), `INSERT INTO signing_keys SELECT 'planted', algorithm, private, ?, created_at, active_at, retired_at, expires_at FROM signing_keys WHERE id = ?`, pub, hdr.KID); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, checkpoint string
	}{
		{"the real signature over edited claims", header + "." + base64.RawURLEncoding.EncodeToString(earlierJSON) + "." + sig},
		{"another key under the server's kid", sign(hdr.KID)},
		{"a key planted in the database", sign("planted")},
		{"a key nobody published", sign("nobody")},
		{"no signature at all", header + "." + base64.RawURLEncoding.EncodeToString(earlierJSON) + "."},
		{"not a checkpoint", "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			wantExit(t, keystep(t, "", "audit", "verify", "--checkpoint", tt.checkpoint, "--data", d), 3, "checkpoint")
			r := keystep(t, "", "audit", "verify", "--checkpoint", tt.checkpoint, "--json", "--data", d)
			wantExit(t, r, 3)
			if out := verifyOut(t, r); out.OK || out.Checkpoint == nil || out.Checkpoint.OK || out.Checkpoint.Error == "" {
				t.Errorf("verify --json = %+v, want the checkpoint refused", out)
			}
		})
	}
	// The real one still passes.
	mustKeystep(t, "", "audit", "verify", "--checkpoint", cp, "--data", d)
}

// insertUnkeyed writes rows as a Keystep before the keyed chain did: each
// hash is plain SHA-256 over the row and the previous hash.
func insertUnkeyed(t *testing.T, data string, n int) {
	t.Helper()
	db := rawDB(t, data)
	prev := ""
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		e := storage.AuditEvent{Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Minute), Type: "login.completed",
			UserID: "u-old", ClientID: "rp", IP: "192.0.2.1", UserAgent: "old browser", Outcome: "success",
			Details: map[string]string{"acr": "urn:keystep:acr:sfa"}}
		e.PrevHash, e.Hash = prev, plainHash(prev, e)
		details, _ := json.Marshal(e.Details)
		if _, err := db.ExecContext(t.Context(), `INSERT INTO audit_events (seq, time, type, user_id, actor_id, client_id, ip, user_agent, outcome, reason, details, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, e.Time.UnixNano(), e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent,
			e.Outcome, e.Reason, string(details), e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
}

// Databases from before the keyed chain keep verifying: their rows are a
// prefix that the first keyed row seals.
func TestAuditVerifyAcceptsUnkeyedRowsFollowedByKeyedOnes(t *testing.T) {
	d := t.TempDir()
	mustKeystep(t, "", "keys", "list", "--data", d) // a database and master key
	insertUnkeyed(t, d, 3)
	createUser(t, d, "alice") // row 4, keyed, continues from row 3

	r := mustKeystep(t, "", "audit", "verify", "--data", d)
	if !strings.Contains(r.stdout, "audit chain intact: 4 rows") || !strings.Contains(r.stdout, "rows 1–3") {
		t.Errorf("verify:\n%s", r.stdout)
	}
	r = mustKeystep(t, "", "audit", "verify", "--json", "--data", d)
	if out := verifyOut(t, r); !out.OK || out.Rows != 4 || out.Unkeyed != 3 {
		t.Errorf("verify --json = %+v, want ok, 4 rows, 3 unkeyed", out)
	}

	// The unkeyed rows cannot be rewritten either: the first keyed row
	// covers the hash they end with.
	rewriteAudit(t, d, 2, 3, func(e *storage.AuditEvent) {
		if e.Seq == 2 {
			e.Reason = "nothing to see"
		}
	})
	wantExit(t, keystep(t, "", "audit", "verify", "--data", d), 1, "audit chain broken at row 4")
}

func TestAuditVerifyOfAnUnkeyedOnlyLogAsksForOneStart(t *testing.T) {
	d := t.TempDir()
	mustKeystep(t, "", "keys", "list", "--data", d)
	insertUnkeyed(t, d, 3)
	// Written by an older Keystep, or rewritten whole by someone without the
	// master key: nothing tells the two apart, so it does not pass.
	wantExit(t, keystep(t, "", "audit", "verify", "--data", d), 1, "no keyed row", "start the server")
	// The server's first start seals the unkeyed rows with a signed checkpoint.
	startServerCode(t, d)
	r := mustKeystep(t, "", "audit", "verify", "--data", d)
	if !strings.Contains(r.stdout, "audit chain intact: 4 rows") {
		t.Errorf("verify after a start:\n%s", r.stdout)
	}
	events := auditRows(t, d)
	if last := events[len(events)-1]; last.Type != "audit.checkpoint" || last.Details["seq"] != "3" || last.Details["hash"] != events[2].Hash {
		t.Errorf("row 4 = %+v, want a checkpoint of row 3", last)
	}
}
