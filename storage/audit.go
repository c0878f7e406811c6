package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// AuditEvent is one row of the append-only audit log. Each row carries the
// hash of the row before it, so editing, inserting or deleting a row breaks
// the chain (see VerifyAuditChain).
type AuditEvent struct {
	Seq       int64 // assigned by the backend, 1, 2, 3, …
	Time      time.Time
	Type      string // e.g. "login.success", "stepup.satisfied", "factor.enrolled"
	UserID    string // whose account the event is about
	ActorID   string // who acted (an admin, the user, or empty for the system)
	ClientID  string
	IP        string
	UserAgent string
	Outcome   string // "success", "failure", "denied", …
	Reason    string
	Details   map[string]string
	PrevHash  string // hex; "" for the first row
	Hash      string // hex SHA-256 over PrevHash and the canonical row
}

// AuditFilter narrows ListAudit. Zero fields match everything.
type AuditFilter struct {
	UserID   string
	ClientID string
	Type     string
	Outcome  string
	Since    time.Time
	Until    time.Time
	AfterSeq int64
	Limit    int // 0 means no limit
	Newest   bool
}

// Audit stores the audit log.
type Audit interface {
	// AppendAudit assigns Seq, PrevHash and Hash and appends e. Appends are
	// linearised: under concurrent writers the chain stays one line.
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// ListAudit returns matching events ordered by Seq (descending with Newest).
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// AuditHash is the chain hash of e given the previous row's hash. Both
// backends and `keystep audit verify` use it, so the encoding is fixed here:
// a JSON array of the fields in order, Details with sorted keys.
func AuditHash(prevHash string, e AuditEvent) string {
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
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// ChainError says where a chain first breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at row %d: %s", e.Seq, e.Reason)
}

// VerifyAuditChain checks events (all of them, ordered by Seq ascending): the
// sequence has no gaps, each row points at its predecessor's hash and each hash
// matches the row's content. It returns a *ChainError for the first break.
func VerifyAuditChain(events []AuditEvent) error {
	prev := ""
	for i, e := range events {
		want := int64(i + 1)
		switch {
		case e.Seq != want:
			return &ChainError{Seq: want, Reason: fmt.Sprintf("row %d missing or out of place (found %d)", want, e.Seq)}
		case e.PrevHash != prev:
			return &ChainError{Seq: e.Seq, Reason: "previous-hash link does not match the row before (row inserted or deleted)"}
		case AuditHash(prev, e) != e.Hash:
			return &ChainError{Seq: e.Seq, Reason: "content does not match its hash (row edited)"}
		}
		prev = e.Hash
	}
	return nil
}
