package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"
)

// SID is the session identifier put in tokens (the sid claim, OIDC
// Front-/Back-Channel Logout). The storage ID rotates with the factor set;
// sid must not, so it is derived from what rotation keeps: the user and the
// creation time.
func (s Session) SID() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "sid:%s:%d", s.UserID, s.CreatedAt.UnixNano()))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:22]
}

// End is what Sessions.EndSessions needs to end s.
func (s Session) End() SessionEnd { return SessionEnd{ID: s.ID, UserID: s.UserID, SID: s.SID()} }

// SessionEnd names a browser session to end (Sessions.EndSessions): its
// storage ID ("" when its row is already gone), its user and its sid.
type SessionEnd struct {
	ID     string
	UserID string
	SID    string
}

// OutboxKind says what an outbox message is and how the worker delivers it.
// It is stored; the values never change.
type OutboxKind string

// OutboxBackchannelLogout is an OIDC Back-Channel Logout 1.0 notification:
// Target is the client's backchannel_logout_uri when it was queued (each
// attempt goes to the URI registered then, so a corrected one is used),
// Payload the JSON of a LogoutNotice; the token itself is signed at each
// attempt, so a retry never sends an expired one.
const OutboxBackchannelLogout OutboxKind = "backchannel_logout"

// OutboxMail is an email to a person: Target is "mailto:" and the
// address, ClientID is empty, Payload the JSON of the message (a
// login/mail Message) with the user it is about under "sub". It is
// queued only when a mail sender is configured, and delivered through it.
const OutboxMail OutboxKind = "mail"

// LogoutNotice is the payload of an OutboxBackchannelLogout message (its
// JSON names are the schema). JTI is fixed when the message is queued, so
// every attempt sends the same jti and the receiver can drop repeats.
type LogoutNotice struct {
	Subject string `json:"sub"`
	SID     string `json:"sid"`
	JTI     string `json:"jti"`
}

// OutboxStatus is where a message is in its delivery. A delivered message
// is deleted.
type OutboxStatus string

const (
	// OutboxPending: not delivered yet; due at NextAttemptAt.
	OutboxPending OutboxStatus = "pending"
	// OutboxFailed: given up after the delivery bound; only
	// RequeueOutbox makes it pending again.
	OutboxFailed OutboxStatus = "failed"
)

// OutboxMessage is a notification Keystep owes another party, written in the
// same transaction as the state change it reports, so a change is never
// made without its notification.
type OutboxMessage struct {
	ID       string
	Kind     OutboxKind
	ClientID string // whose it is (the console groups by it)
	Target   string // where it goes (an https URL)
	Payload  string
	Status   OutboxStatus
	// Attempts counts the claims: one more each time a worker takes it.
	Attempts int
	// QueuedAt is when it was written, or requeued: the delivery bound
	// runs from it.
	QueuedAt      time.Time
	NextAttemptAt time.Time
	LastAttemptAt time.Time // zero before the first attempt
	LastError     string
	// LeaseOwner claimed it until LeaseUntil; from then on it is due again
	// (a worker that died mid-delivery loses nothing).
	LeaseOwner string
	LeaseUntil time.Time
}

// OutboxSummary is one client's outbox at a glance (the console's delivery
// status).
type OutboxSummary struct {
	ClientID      string
	Pending       int
	Failed        int
	LastAttemptAt time.Time // the latest attempt of any of its messages
	LastError     string    // the error of its most recent failed attempt
}

// Outbox stores the notifications Keystep owes (see OutboxMessage). Messages
// enter it only with a state change (Sessions.EndSessions); workers on any
// number of instances deliver them.
type Outbox interface {
	// ClaimOutbox leases up to limit pending messages due at now (their
	// NextAttemptAt reached and no live lease) to owner until now+lease,
	// adding one to their Attempts and setting LastAttemptAt, and returns
	// them as claimed, earliest due first. Among concurrent claims each
	// message goes to one owner.
	ClaimOutbox(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error)
	// FinishOutbox deletes the delivered message id; unknown IDs are not
	// an error (another instance whose lease outlived ours delivered it).
	FinishOutbox(ctx context.Context, id string) error
	// RetryOutbox releases owner's lease on message id and makes it due
	// again at next, recording lastErr. ErrNotFound when the message is
	// gone or owner's lease was lost to another claim.
	RetryOutbox(ctx context.Context, id, owner string, next time.Time, lastErr string) error
	// FailOutbox gives message id up (OutboxFailed), recording lastErr,
	// with the same ErrNotFound as RetryOutbox.
	FailOutbox(ctx context.Context, id, owner string, lastErr string) error
	// RequeueOutbox makes the given-up message id pending again, due and
	// queued at now with no attempts; ErrNotFound unless it is failed.
	RequeueOutbox(ctx context.Context, id string, now time.Time) error
	// OutboxMessage returns message id; ErrNotFound when there is none.
	OutboxMessage(ctx context.Context, id string) (OutboxMessage, error)
	// OutboxMessages returns up to limit messages of clientID ("" for all)
	// with status ("" for any), most recently queued first.
	OutboxMessages(ctx context.Context, clientID string, status OutboxStatus, limit int) ([]OutboxMessage, error)
	// OutboxSummaries returns each client's summary, by client ID, for the
	// clients with messages.
	OutboxSummaries(ctx context.Context) ([]OutboxSummary, error)
	// DeleteGivenUpOutbox deletes the given-up messages last attempted
	// before before, in batches, and returns how many.
	DeleteGivenUpOutbox(ctx context.Context, before time.Time) (int, error)
}
