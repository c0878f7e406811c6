package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keystep/keystep/idp"
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
