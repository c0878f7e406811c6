package storage

import (
	"context"
	"time"
)

// Shared Signals Framework 1.0 (OpenID SSF) delivery methods: the URNs a
// stream's delivery.method names.
const (
	SSFPush = "urn:ietf:rfc:8935" // the transmitter POSTs each SET (RFC 8935)
	SSFPoll = "urn:ietf:rfc:8936" // the receiver polls for SETs (RFC 8936)
)

// SSF stream statuses (SSF 1.0 §8.1.2): an enabled stream is sent events;
// a paused one has them held until it is enabled again; a disabled one is
// sent none, and what was held for it is dropped.
const (
	StreamEnabled  = "enabled"
	StreamPaused   = "paused"
	StreamDisabled = "disabled"
)

// The outbox kinds of Shared Signals: a SET for a push stream, and a SET
// held for a poll stream until its receiver acknowledges it or it expires.
// Payload is the JSON of a SecurityEvent; the SET is signed when it is
// sent, so a retry never carries a stale one.
const (
	OutboxSSFPush OutboxKind = "ssf_push"
	OutboxSSFPoll OutboxKind = "ssf_poll"
)

// SecurityEvent is the payload of an SSF outbox message (its JSON names are
// the schema): one event of one type about one subject, fixed when it was
// queued (jti, and the time of the event).
type SecurityEvent struct {
	JTI  string `json:"jti"`
	Type string `json:"type"` // the event type URI
	// UserID and SID name the subject: a user, or a user's session (sid).
	// Both empty for a stream's verification event.
	UserID   string         `json:"sub,omitempty"`
	SID      string         `json:"sid,omitempty"`
	StreamID string         `json:"stream_id"`
	At       int64          `json:"at"`               // when it happened (unix seconds)
	Claims   map[string]any `json:"claims,omitempty"` // the event's own members
}

// Stream is a client's SSF event stream (SSF 1.0 §8.1.1): Keystep
// transmits the events it requested to it. A client has at most one.
type Stream struct {
	ID       string
	ClientID string
	// DeliveryMethod is SSFPush or SSFPoll; EndpointURL is where pushes go
	// (for poll, Keystep's poll endpoint); AuthorizationHeader, if set, is
	// sent with each push.
	DeliveryMethod      string
	EndpointURL         string
	AuthorizationHeader string
	Audience            []string
	EventsRequested     []string
	Description         string
	Status              string // StreamEnabled, StreamPaused, StreamDisabled
	Reason              string
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Receiver is a transmitter Keystep receives SETs from (RFC 8935 push to
// /ssf/receive): its issuer, its keys (a jwks_uri fetched when needed, or a
// JWKS stored here) and the aud its SETs must carry.
type Receiver struct {
	Issuer    string
	JWKSURI   string
	JWKS      string
	Audience  string
	CreatedAt time.Time
}

// SharedSignals stores SSF streams and receivers, and the outbox
// operations SSF needs besides a session's end.
type SharedSignals interface {
	// CreateStream inserts st; ErrAlreadyExists when its client has a
	// stream (or the ID is taken).
	CreateStream(ctx context.Context, st Stream) error
	// StreamByClient returns the client's stream; ErrNotFound when none.
	StreamByClient(ctx context.Context, clientID string) (Stream, error)
	// ListStreams returns every stream, by client ID.
	ListStreams(ctx context.Context) ([]Stream, error)
	// UpdateStream replaces the mutable fields of the stream of
	// st.ClientID (everything but ID, ClientID and CreatedAt);
	// ErrNotFound when there is none.
	UpdateStream(ctx context.Context, st Stream) error
	// DeleteStream deletes the client's stream and the SSF messages still
	// owed to it; ErrNotFound when there is none.
	DeleteStream(ctx context.Context, clientID string) error

	// QueueOutbox writes msgs pending (a change that is not a storage
	// transaction of its own queues its notifications right after it).
	QueueOutbox(ctx context.Context, msgs []OutboxMessage) error
	// PollOutbox returns up to limit pending messages of kind for
	// clientID, oldest first, and whether more remain.
	PollOutbox(ctx context.Context, clientID string, kind OutboxKind, limit int) ([]OutboxMessage, bool, error)
	// AckOutbox deletes the messages ids of kind for clientID; IDs that
	// are not (anymore) are ignored. It returns how many it deleted.
	AckOutbox(ctx context.Context, clientID string, kind OutboxKind, ids []string) (int, error)

	// CreateReceiver inserts r; ErrAlreadyExists when its issuer is taken.
	CreateReceiver(ctx context.Context, r Receiver) error
	// ReceiverByIssuer returns the receiver of issuer; ErrNotFound when
	// none.
	ReceiverByIssuer(ctx context.Context, issuer string) (Receiver, error)
	// ListReceivers returns every receiver, by issuer.
	ListReceivers(ctx context.Context) ([]Receiver, error)
	// DeleteReceiver deletes the receiver of issuer; ErrNotFound when none.
	DeleteReceiver(ctx context.Context, issuer string) error
}

// The Shared Signals event types (CAEP 1.0, RISC 1.0, SSF 1.0) Keystep
// sends (to streams) or acts on (received at /ssf/receive).
const (
	SETSessionRevoked         = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	SETCredentialChange       = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	SETAssuranceLevelChange   = "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change"
	SETDeviceComplianceChange = "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change"
	SETAccountDisabled        = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
	SETAccountEnabled         = "https://schemas.openid.net/secevent/risc/event-type/account-enabled"
	SETCredentialCompromise   = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"
	// SETVerification is the stream verification event (SSF 1.0 §8.1.4).
	SETVerification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// SETsSent are the event types a stream can request, in the order
// events_supported lists them.
var SETsSent = []string{SETSessionRevoked, SETCredentialChange, SETAssuranceLevelChange, SETAccountDisabled, SETAccountEnabled}
