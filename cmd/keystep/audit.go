package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/storage"
)

// exitCheckpointRefused is the exit status of `audit verify` when the
// checkpoint given is not one the server signed: the log could not be
// judged against it. A log that fails verification exits 1.
const exitCheckpointRefused = 3

// checkpointJSON is one checkpoint in `audit checkpoint --json` and
// `audit verify --json`.
type checkpointJSON struct {
	Seq        int64     `json:"seq"`
	Hash       string    `json:"hash,omitempty"`
	SignedAt   time.Time `json:"signed_at,omitzero"`
	KeyID      string    `json:"kid,omitempty"`
	Checkpoint string    `json:"checkpoint,omitempty"`
	OK         *bool     `json:"ok,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// readChain reads the whole audit log and verifies its keyed chain: err is
// a failure to read, chainErr what the chain check found.
func readChain(ctx context.Context, st storage.Store, masterKey []byte) (events []storage.AuditEvent, head storage.AuditHead, chainErr, err error) {
	key, err := storage.NewAuditKey(masterKey)
	if err != nil {
		return nil, head, nil, err
	}
	if events, err = st.ListAudit(ctx, storage.AuditFilter{}); err != nil {
		return nil, head, nil, err
	}
	head, chainErr = storage.VerifyAuditChain(key, events)
	return events, head, chainErr, nil
}

// auditVerify checks the keyed chain and, given a checkpoint kept
// elsewhere, that the checkpoint is the server's and the log still reaches
// it unchanged (DESIGN §7).
func auditVerify(ctx context.Context, st storage.Store, masterKey []byte, checkpointArg string, asJSON bool, stdout io.Writer) error {
	events, head, chainErr, err := readChain(ctx, st, masterKey)
	if err != nil {
		return err
	}

	var cp idp.Checkpoint
	var cpErr, cutErr error // the checkpoint refused; the log not reaching it
	if checkpointArg != "" {
		signed, err := readCheckpoint(checkpointArg)
		if err == nil {
			cp, err = idp.VerifyCheckpoint(ctx, st, masterKey, signed)
		}
		switch {
		case err != nil:
			cpErr = fmt.Errorf("checkpoint refused: %w", err)
		case chainErr == nil:
			cutErr = cp.Check(events)
		}
	}
	failed := errors.Join(chainErr, cutErr)

	if asJSON {
		res := map[string]any{"rows": len(events), "ok": failed == nil && cpErr == nil, "unkeyed_rows": head.Unkeyed}
		if head.Seq > 0 {
			res["head"] = checkpointJSON{Seq: head.Seq, Hash: head.Hash}
		}
		if err := errors.Join(failed, cpErr); err != nil {
			res["error"] = err.Error()
		}
		if checkpointArg != "" {
			ok := cpErr == nil && cutErr == nil
			c := checkpointJSON{Seq: cp.Seq, Hash: cp.Hash, SignedAt: cp.IssuedAt, KeyID: cp.KeyID, OK: &ok}
			if err := errors.Join(cpErr, cutErr); err != nil {
				c.Error = err.Error()
			}
			res["checkpoint"] = c
		}
		if err := printJSON(stdout, res); err != nil {
			return err
		}
	}
	switch {
	case failed != nil:
		return failed
	case cpErr != nil:
		return exitError{exitCheckpointRefused, cpErr}
	case asJSON:
		return nil
	}
	fmt.Fprintf(stdout, "audit chain intact: %d rows\n", len(events))
	if head.Unkeyed > 0 {
		// Expected once, from the upgrade; a switch later than that means
		// the log was rewritten whole (README, "Audit log").
		fmt.Fprintf(stdout, "rows 1–%d were written before the chain was keyed; row %d (%s), keyed, covers them\n",
			head.Unkeyed, head.Unkeyed+1, events[head.Unkeyed].Time.Format(time.RFC3339))
	}
	if checkpointArg != "" {
		fmt.Fprintf(stdout, "checkpoint at row %d (signed %s with key %s): the log still reaches it unchanged\n",
			cp.Seq, cp.IssuedAt.Format(time.RFC3339), cp.KeyID)
	}
	return nil
}

// auditCheckpoint prints the head of a verified chain as a signed
// checkpoint, for the operator to keep outside the database.
func auditCheckpoint(ctx context.Context, st storage.Store, masterKey []byte, asJSON bool, stdout io.Writer) error {
	_, head, chainErr, err := readChain(ctx, st, masterKey)
	if err != nil {
		return err
	}
	if chainErr != nil {
		return fmt.Errorf("not signing a checkpoint of a broken log: %w", chainErr)
	}
	if head.Seq == 0 {
		return errors.New("the audit log is empty: nothing to checkpoint")
	}
	now := clock()
	signed, err := idp.SignCheckpoint(ctx, st, masterKey, now, storage.AuditCheckpoint{Seq: head.Seq, Hash: head.Hash})
	if err != nil {
		return fmt.Errorf("sign checkpoint: %w (the server makes its signing keys on its first start)", err)
	}
	if asJSON {
		return printJSON(stdout, checkpointJSON{Seq: head.Seq, Hash: head.Hash, SignedAt: now.Truncate(time.Second), Checkpoint: signed})
	}
	_, err = fmt.Fprintln(stdout, signed)
	return err
}

// readCheckpoint takes --checkpoint: a signed checkpoint, or a file of
// them (one a line, as `audit checkpoint >>FILE` or the server's JSON log
// leaves them), of which the last counts. A line may be the checkpoint
// itself or a JSON object with it under "checkpoint"; so may the whole
// text (`audit checkpoint --json`).
func readCheckpoint(arg string) (string, error) {
	text := arg
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		b, err := os.ReadFile(arg)
		if err != nil {
			return "", err
		}
		text = string(b)
	} else if strings.ContainsRune(arg, os.PathSeparator) {
		return "", fmt.Errorf("checkpoint file: %w", err) // a JWS has no slash: this was meant as a file
	}
	if c, ok := fromJSON(text); ok {
		return c, nil
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if c, ok := fromJSON(line); ok {
			return c, nil
		}
		if strings.Count(line, ".") == 2 && !strings.ContainsAny(line, " {") {
			return line, nil
		}
	}
	return "", errors.New("no checkpoint in the text given")
}

// fromJSON is the "checkpoint" member of a JSON object.
func fromJSON(s string) (string, bool) {
	var v struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &v); err != nil || v.Checkpoint == "" {
		return "", false
	}
	return v.Checkpoint, true
}

// exitNotCommitted is the exit status of `audit verify --transaction` for an
// intact record of an approval made with a code (an authenticator app, a
// recovery code) or a password: the record is the server's word that the
// details were on the page, but nothing the person's device signed proves
// it.
const exitNotCommitted = 4

// transactionReport is `audit verify --transaction ID --json`.
type transactionReport struct {
	Seq         int64    `json:"seq"`
	AuthRequest string   `json:"auth_request,omitempty"`
	UserID      string   `json:"user_id,omitempty"`
	Method      string   `json:"method,omitempty"`
	ACR         string   `json:"acr,omitempty"`
	Details     string   `json:"authorization_details,omitempty"`
	Committed   bool     `json:"committed"`
	Checks      []string `json:"checks"`
	OK          bool     `json:"ok"`
	Error       string   `json:"error,omitempty"`
}

// auditVerifyTransaction checks the approval of one transaction (RFC 9396
// authorization details): the stepup.transaction row at seq — the audit
// row's sequence number, as `audit export` shows it; one authorization
// request may have several rows, a refusal and an approval — is covered by
// an intact keyed chain; its details are the canonical text they claim to
// be; and, for a passkey approval, the assertion kept in the row is a
// signature by the stored credential over the challenge recomputed from the
// details and the nonce (idp/details Challenge), in a webauthn.get
// ceremony at the issuer's origin, with user presence (and user
// verification when it was required). issuer is the server's issuer URL:
// the WebAuthn origin and RP ID are derived from it as the server derives
// them (factor.NewWebAuthn).
func auditVerifyTransaction(ctx context.Context, st storage.Store, masterKey []byte, seq int64, issuer string, asJSON bool, stdout io.Writer) error {
	rep := transactionReport{Seq: seq}
	notCommitted, err := checkTransaction(ctx, st, masterKey, seq, issuer, &rep)
	rep.OK = err == nil && !notCommitted
	if err != nil {
		rep.Error = err.Error()
	}
	if asJSON {
		if perr := printJSON(stdout, rep); perr != nil {
			return perr
		}
	} else {
		for _, c := range rep.Checks {
			fmt.Fprintf(stdout, "ok: %s\n", c)
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("transaction %d: %w", seq, err)
	case notCommitted:
		msg := fmt.Errorf("transaction %d was approved with %s, which cannot commit to the details: the record is intact, but the approval cannot be verified cryptographically", seq, rep.Method)
		if !asJSON {
			fmt.Fprintln(stdout, msg.Error())
		}
		return exitError{exitNotCommitted, msg}
	case !asJSON:
		fmt.Fprintf(stdout, "transaction %d verified: the passkey of user %s approved %s (auth request %s, acr %s)\n",
			seq, rep.UserID, printable(rep.Details), rep.AuthRequest, rep.ACR)
	}
	return nil
}

// checkTransaction does the checks of auditVerifyTransaction, appending
// each one passed to rep.Checks. notCommitted reports an intact record of
// an approval that signed nothing.
func checkTransaction(ctx context.Context, st storage.Store, masterKey []byte, seq int64, issuer string, rep *transactionReport) (notCommitted bool, err error) {
	events, head, chainErr, err := readChain(ctx, st, masterKey)
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(events, func(e storage.AuditEvent) bool { return e.Seq == seq })
	if i < 0 {
		return false, errors.New("no audit row with this sequence number")
	}
	e := events[i]
	if e.Type != storage.EventStepUpTransaction {
		return false, fmt.Errorf("row %d is a %s event, not %s", seq, e.Type, storage.EventStepUpTransaction)
	}
	if chainErr != nil {
		return false, fmt.Errorf("the audit chain is broken: %w", chainErr)
	}
	if !e.Keyed() || seq > head.Seq {
		return false, errors.New("the keyed audit chain does not cover this row")
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("the audit chain is intact and covers row %d", seq))
	det := e.Details
	rep.AuthRequest, rep.UserID, rep.Method, rep.ACR = det["auth_request"], e.UserID, det["method"], det["acr"]
	if e.Outcome != "success" {
		return false, fmt.Errorf("the row records a refused approval (%s: %s)", printable(e.Outcome), printable(e.Reason))
	}

	d, err := details.Parse(det["authorization_details"])
	if err != nil {
		return false, fmt.Errorf("stored authorization details: %w", err)
	}
	if d.String() != det["authorization_details"] {
		return false, errors.New("the stored authorization details are not in canonical form")
	}
	hash := d.Hash()
	if b64url.EncodeToString(hash[:]) != det["details_hash"] {
		return false, errors.New("the details hash does not match the stored details")
	}
	rep.Details = d.String()
	rep.Checks = append(rep.Checks, "the details are canonical and match their hash")

	if det["committed"] != "true" {
		return true, nil
	}
	rep.Committed = true
	return false, verifyAssertion(ctx, st, e, d, issuer, rep)
}

var b64url = base64.RawURLEncoding

// verifyAssertion checks the WebAuthn assertion a stepup.transaction row
// keeps (WebAuthn Level 3 §7.2, the steps that can be checked after the
// fact: the signature counter and the session are the server's at the time).
func verifyAssertion(ctx context.Context, st storage.Store, e storage.AuditEvent, d details.Details, issuer string, rep *transactionReport) error {
	det := e.Details
	field := func(name string) ([]byte, error) {
		b, err := b64url.DecodeString(det[name])
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("the row's %s is missing or not base64url", name)
		}
		return b, nil
	}
	var nonce, clientData, authData, sig, credID []byte
	for _, f := range []struct {
		name string
		to   *[]byte
	}{{"nonce", &nonce}, {"client_data_json", &clientData}, {"authenticator_data", &authData}, {"signature", &sig}, {"credential_id", &credID}} {
		b, err := field(f.name)
		if err != nil {
			return err
		}
		*f.to = b
	}
	if issuer == "" {
		return errors.New("--issuer is needed to check the origin and the RP ID of a passkey approval")
	}
	iu, err := url.Parse(issuer)
	if err != nil || iu.Scheme == "" || iu.Hostname() == "" {
		return fmt.Errorf("--issuer %q is not a URL", issuer)
	}
	origin, rpID := iu.Scheme+"://"+iu.Host, iu.Hostname()

	// clientDataJSON: what the browser says the authenticator signed.
	var cd struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
		Origin    string `json:"origin"`
	}
	if err := json.Unmarshal(clientData, &cd); err != nil {
		return errors.New("clientDataJSON is not JSON")
	}
	if cd.Type != "webauthn.get" {
		return fmt.Errorf("clientDataJSON type is %q, not webauthn.get", cd.Type)
	}
	challenge, err := b64url.DecodeString(cd.Challenge)
	if err != nil || !details.VerifyChallenge(d, nonce, challenge) {
		return errors.New("the signed challenge is not the one derived from these details and this nonce")
	}
	if cd.Origin != origin {
		return fmt.Errorf("the assertion was made at %q, not at the issuer's origin %q", cd.Origin, origin)
	}
	rep.Checks = append(rep.Checks, "clientDataJSON is a webauthn.get at "+origin+" over the challenge derived from the details and the nonce")

	// authenticatorData: rpIdHash (32 bytes), flags, signCount (4 bytes).
	if len(authData) < 37 {
		return errors.New("authenticatorData is too short")
	}
	if rp := sha256.Sum256([]byte(rpID)); !bytes.Equal(authData[:32], rp[:]) {
		return fmt.Errorf("authenticatorData is for another RP ID than %q", rpID)
	}
	flags := protocol.AuthenticatorFlags(authData[32])
	if !flags.HasUserPresent() {
		return errors.New("the authenticator did not report user presence")
	}
	if det["user_verification"] == string(protocol.VerificationRequired) && !flags.HasUserVerified() {
		return errors.New("user verification was required and the authenticator did not report it")
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("authenticatorData is for RP ID %s, user present, user verified %t", rpID, flags.HasUserVerified()))

	// The signature, by the credential stored for the user.
	fs, err := st.ListFactors(ctx, e.UserID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(fs, func(f storage.Factor) bool { return f.ID == det["factor_id"] && f.Kind == storage.FactorWebAuthn })
	if i < 0 {
		return fmt.Errorf("the passkey %q of user %s is no longer stored: its public key is needed to check the signature", det["factor_id"], e.UserID)
	}
	var cred webauthn.Credential
	if err := json.Unmarshal(fs[i].Secret, &cred); err != nil {
		return fmt.Errorf("stored passkey %s: %w", fs[i].ID, err)
	}
	if !bytes.Equal(cred.ID, credID) {
		return errors.New("the row's credential ID is not the stored passkey's")
	}
	key, err := webauthncose.ParsePublicKey(cred.PublicKey)
	if err != nil {
		return fmt.Errorf("stored passkey %s: public key: %w", fs[i].ID, err)
	}
	cdHash := sha256.Sum256(clientData)
	if ok, err := webauthncose.VerifySignature(key, append(slices.Clone(authData), cdHash[:]...), sig); err != nil || !ok {
		return fmt.Errorf("the signature does not verify with passkey %q (%s)", fs[i].Name, fs[i].ID)
	}
	rep.Checks = append(rep.Checks, fmt.Sprintf("the signature verifies with passkey %q (%s) of user %s", fs[i].Name, fs[i].ID, e.UserID))
	return nil
}
