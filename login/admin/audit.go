package admin

import (
	"time"

	"github.com/keystep/keystep/storage"
)

// AuditJSON is one exported audit row: snake_case keys, and everything needed
// to re-check the hash chain outside Keystep (storage.AuditKey.Hash, with the
// master key; storage.UnkeyedAuditHash for rows from before). The console
// and `keystep audit export` write the same lines.
type AuditJSON struct {
	Seq       int64             `json:"seq"`
	Time      time.Time         `json:"time"`
	Type      storage.EventType `json:"type"`
	UserID    string            `json:"user_id,omitempty"`
	ActorID   string            `json:"actor_id,omitempty"`
	ClientID  string            `json:"client_id,omitempty"`
	IP        string            `json:"ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Outcome   string            `json:"outcome"`
	Reason    string            `json:"reason,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
	PrevHash  string            `json:"prev_hash"`
	Hash      string            `json:"hash"`
}

// AuditJSONOf converts an event for export.
func AuditJSONOf(e storage.AuditEvent) AuditJSON {
	return AuditJSON{e.Seq, e.Time, e.Type, e.UserID, e.ActorID, e.ClientID, e.IP, e.UserAgent,
		e.Outcome, e.Reason, e.Details, e.PrevHash, e.Hash}
}
