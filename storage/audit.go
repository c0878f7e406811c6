package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// AuditEvent is one row of the append-only audit log. Each row carries the
// hash of the row before it, so editing, inserting or deleting a row breaks
// the chain (see VerifyAuditChain).
type AuditEvent struct {
	Seq       int64 // assigned by the backend, 1, 2, 3, …
	Time      time.Time
	Type      EventType
	UserID    string // whose account the event is about
	ActorID   string // who acted (an admin, the user, or empty for the system)
	ClientID  string
	IP        string
	UserAgent string
	Outcome   string // "success", "failure", "denied", …
	Reason    string
	Details   map[string]string
	PrevHash  string // the previous row's Hash; "" for the first row
	// Hash is "k1:" and the hex HMAC-SHA256 under the AuditKey (AuditKey.Hash)
	// for rows written since the chain is keyed; rows written before that
	// carry the bare hex SHA-256 of UnkeyedAuditHash.
	Hash string
}

// Keyed reports whether e's hash is keyed; rows written before the chain
// was keyed are not.
func (e AuditEvent) Keyed() bool { return strings.HasPrefix(e.Hash, keyedPrefix) }

// AuditFilter narrows ListAudit. Zero fields match everything.
type AuditFilter struct {
	UserID   string
	ClientID string
	Type     EventType
	// Types, when set, keeps only events of one of these types.
	Types    []EventType
	Outcome  string
	Since    time.Time
	Until    time.Time
	AfterSeq int64
	Limit    int // 0 means no limit
	Newest   bool
}

// Audit stores the audit log.
type Audit interface {
	// AppendAudit assigns Seq, PrevHash and Hash (key.Hash over the row and
	// the last row's hash) and appends e. Appends are linearised: under
	// concurrent writers the chain stays one line. A zero key is an error:
	// an unkeyed row after keyed ones would break the chain.
	AppendAudit(ctx context.Context, key AuditKey, e AuditEvent) (AuditEvent, error)
	// ListAudit returns matching events ordered by Seq (descending with Newest).
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// keyedPrefix marks a keyed row's hash with the scheme (version 1) that made
// it, so a verifier knows which check applies to each row.
const keyedPrefix = "k1:"

// AuditKey keys the audit chain. Because the key comes from the master key,
// someone who can write the database but does not hold the master key cannot
// recompute the chain after editing, inserting or deleting a row (DESIGN §7).
type AuditKey struct{ k []byte }

// NewAuditKey derives the chain's key from the master key. The label
// separates it from every other use of the master key (HMAC as a PRF).
func NewAuditKey(masterKey []byte) (AuditKey, error) {
	if len(masterKey) == 0 {
		return AuditKey{}, errors.New("storage: no master key for the audit chain")
	}
	m := hmac.New(sha256.New, masterKey)
	m.Write([]byte("keystep audit chain v1"))
	return AuditKey{k: m.Sum(nil)}, nil
}

// IsZero reports whether k holds no key.
func (k AuditKey) IsZero() bool { return len(k.k) == 0 }

// LogValue keeps the key out of logs.
func (k AuditKey) LogValue() slog.Value { return slog.StringValue("[audit key]") }

// String keeps the key out of formatted output.
func (k AuditKey) String() string { return "[audit key]" }

// Hash is the keyed chain hash of e given the previous row's hash. Both
// backends and every verifier use it, so the scheme lives here only.
func (k AuditKey) Hash(prevHash string, e AuditEvent) string {
	if k.IsZero() {
		panic("storage: audit hash with a zero key") // AppendAudit refuses a zero key first
	}
	m := hmac.New(sha256.New, k.k)
	m.Write(canonical(prevHash, e))
	return keyedPrefix + hex.EncodeToString(m.Sum(nil))
}

// UnkeyedAuditHash is the chain's first scheme: SHA-256 without a key. Rows
// written before the chain was keyed carry it; nothing writes it any more.
func UnkeyedAuditHash(prevHash string, e AuditEvent) string {
	sum := sha256.Sum256(canonical(prevHash, e))
	return hex.EncodeToString(sum[:])
}

// canonical is the byte string both schemes hash: a JSON array of the
// previous hash and the row's fields in order, Details with sorted keys.
func canonical(prevHash string, e AuditEvent) []byte {
	canon, err := json.Marshal([]any{
		prevHash,
		strconv.FormatInt(e.Seq, 10),
		e.Time.UTC().Format(time.RFC3339Nano),
		e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent,
		e.Outcome, e.Reason, e.Details, // encoding/json sorts map keys
	})
	if err != nil {
		// Only strings go in; Marshal cannot fail on them.
		panic(err)
	}
	return canon
}

// ChainError says where a chain first breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at row %d: %s", e.Seq, e.Reason)
}

// AuditHead is what VerifyAuditChain found: the last row and how many rows
// at the start predate the keyed chain.
type AuditHead struct {
	Seq     int64  // 0 for an empty log
	Hash    string // the last row's hash
	Unkeyed int64  // rows 1..Unkeyed carry UnkeyedAuditHash
}

// VerifyAuditChain checks events (all of them, ordered by Seq ascending): the
// sequence has no gaps, each row points at its predecessor's hash and each
// hash matches the row's content under key. It returns a *ChainError for the
// first break.
//
// Rows from before the chain was keyed are accepted only as an unbroken
// prefix that a keyed row follows: that row's keyed hash covers the unkeyed
// head, so the prefix cannot be rewritten either. An unkeyed row after a keyed
// one, or a log with no keyed row at all, is what someone rewriting the log
// without the master key would produce, and fails.
func VerifyAuditChain(key AuditKey, events []AuditEvent) (AuditHead, error) {
	if key.IsZero() {
		return AuditHead{}, errors.New("storage: verify audit chain: no key")
	}
	var head AuditHead
	prev := ""
	for i, e := range events {
		want := int64(i + 1)
		keyed := e.Keyed()
		switch {
		case e.Seq != want:
			return head, &ChainError{Seq: want, Reason: fmt.Sprintf("row %d missing or out of place (found %d)", want, e.Seq)}
		case e.PrevHash != prev:
			return head, &ChainError{Seq: e.Seq, Reason: "previous-hash link does not match the row before (row inserted or deleted)"}
		case !keyed && head.Unkeyed != e.Seq-1:
			return head, &ChainError{Seq: e.Seq, Reason: "row is not keyed but follows keyed rows (rewritten without the master key)"}
		case !keyed && UnkeyedAuditHash(prev, e) != e.Hash:
			return head, &ChainError{Seq: e.Seq, Reason: "content does not match its hash (row edited)"}
		case keyed && !hmac.Equal([]byte(key.Hash(prev, e)), []byte(e.Hash)):
			reason := "content does not match its keyed hash (row edited or rewritten without the master key)"
			if e.Seq == head.Unkeyed+1 {
				reason += ", or this is not the master key that wrote the log"
			}
			return head, &ChainError{Seq: e.Seq, Reason: reason}
		}
		if !keyed {
			head.Unkeyed++
		}
		head.Seq, head.Hash, prev = e.Seq, e.Hash, e.Hash
	}
	if head.Seq > 0 && head.Unkeyed == head.Seq {
		return head, &ChainError{Seq: head.Seq, Reason: "no keyed row: the log was written by a Keystep before the chain was keyed " +
			"(start the server once to continue it keyed) or rewritten by someone without the master key"}
	}
	return head, nil
}

// AuditCheckpoint is the hash of row Seq as the server saw it. Signed and
// kept outside the database, it shows whether the log still reaches that
// row unchanged: deleting the newest rows leaves a chain that verifies, but
// not one that reaches a checkpoint taken before.
type AuditCheckpoint struct {
	Seq  int64
	Hash string
}

// Check compares c with a log that VerifyAuditChain accepted.
func (c AuditCheckpoint) Check(events []AuditEvent) error {
	switch n := int64(len(events)); {
	case c.Seq < 1:
		return fmt.Errorf("checkpoint names row %d", c.Seq)
	case n < c.Seq:
		return &ChainError{Seq: n + 1, Reason: fmt.Sprintf("the log ends at row %d, but a checkpoint shows it reached row %d (newest rows deleted)", n, c.Seq)}
	case events[c.Seq-1].Hash != c.Hash:
		return &ChainError{Seq: c.Seq, Reason: "the row's hash differs from the checkpoint's (the log was replaced from here or before)"}
	}
	return nil
}
