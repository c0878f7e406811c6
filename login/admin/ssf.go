package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/storage"
)

// ReceiverSpec is a transmitter to register (`keystep ssf receivers add`,
// the console): Keystep accepts SETs pushed to /ssf/receive whose iss is
// Issuer, signed with a key of JWKS (or of the set at JWKSURI), and whose
// aud includes Audience.
type ReceiverSpec struct {
	Issuer   string
	JWKSURI  string
	JWKS     string
	Audience string
}

// check reports every problem with s at once, each on the field
// "receiver".
func (s ReceiverSpec) check() []Problem {
	var out []Problem
	receiverProblem := func(key string, args ...any) {
		out = append(out, NewProblem("receiver", key, args...))
	}
	switch httpsURL(s.Issuer) {
	case urlNotAbsolute:
		receiverProblem("issuer: %q is not an absolute URL", s.Issuer)
	case urlNotHTTPS:
		receiverProblem("issuer: %q: https only (http for loopback hosts)", s.Issuer)
	}
	switch {
	case s.JWKSURI != "" && s.JWKS != "":
		receiverProblem("give a jwks_uri or a JWKS, not both")
	case s.JWKSURI != "":
		switch httpsURL(s.JWKSURI) {
		case urlNotAbsolute:
			receiverProblem("jwks_uri: %q is not an absolute URL", s.JWKSURI)
		case urlNotHTTPS:
			receiverProblem("jwks_uri: %q: https only (http for loopback hosts)", s.JWKSURI)
		}
	case s.JWKS != "":
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(s.JWKS), &set); err != nil {
			// The decoder's own words: a diagnostic, shown as it is.
			receiverProblem("JWKS: %s", err.Error())
		} else if len(set.Keys) == 0 {
			receiverProblem("JWKS: no keys")
		} else {
			for _, k := range set.Keys {
				if !k.IsPublic() || !k.Valid() {
					receiverProblem("JWKS: key %q is not a valid public key", k.KeyID)
				}
			}
		}
	default:
		receiverProblem("a jwks_uri or a JWKS is required")
	}
	if s.Audience == "" || len(s.Audience) > 512 {
		receiverProblem("audience: required (the aud the transmitter puts in its SETs for Keystep, usually Keystep's issuer)")
	}
	return out
}

// What httpsURL finds wrong with a URL.
const (
	urlOK = iota
	urlNotAbsolute
	urlNotHTTPS
)

// httpsURL accepts https URLs, and http ones to a loopback host
// (development), with a host and no user info or fragment.
func httpsURL(v string) int {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return urlNotAbsolute
	}
	if u.Scheme == "https" {
		return urlOK
	}
	if a, err := netip.ParseAddr(u.Hostname()); u.Scheme == "http" && (u.Hostname() == "localhost" || err == nil && a.IsLoopback()) {
		return urlOK
	}
	return urlNotHTTPS
}

// AddReceiver registers a transmitter Keystep receives Shared Signals
// from; audited first, like every admin change.
func (a *Service) AddReceiver(ctx context.Context, by Actor, s ReceiverSpec, now time.Time) (storage.Receiver, error) {
	if ps := s.check(); len(ps) > 0 {
		return storage.Receiver{}, &InvalidError{Problems: ps}
	}
	r := storage.Receiver{Issuer: s.Issuer, JWKSURI: s.JWKSURI, JWKS: s.JWKS, Audience: s.Audience, CreatedAt: now}
	details := map[string]string{"issuer": r.Issuer, "jwks_uri": r.JWKSURI, "audience": r.Audience, "jwks": fmt.Sprint(r.JWKS != "")}
	if err := a.record(ctx, by, storage.EventAdminSSFReceiverAdded, "", "", details); err != nil {
		return r, err
	}
	if err := a.Store.CreateReceiver(ctx, r); err != nil {
		return r, a.failed(ctx, by, storage.EventAdminSSFReceiverAdded, "", "", err)
	}
	return r, nil
}

// DeleteReceiver removes the transmitter of issuer: its SETs are refused
// from then on. ErrNotFound when there is none.
func (a *Service) DeleteReceiver(ctx context.Context, by Actor, issuer string) error {
	if _, err := a.Store.ReceiverByIssuer(ctx, issuer); err != nil {
		return err
	}
	if err := a.record(ctx, by, storage.EventAdminSSFReceiverDeleted, "", "", map[string]string{"issuer": issuer}); err != nil {
		return err
	}
	if err := a.Store.DeleteReceiver(ctx, issuer); err != nil {
		return a.failed(ctx, by, storage.EventAdminSSFReceiverDeleted, "", "", err)
	}
	return nil
}

// StreamStatus is one client's Shared Signals stream and the delivery of
// the SETs owed to it.
type StreamStatus struct {
	storage.Stream
	Pending, Failed int
	LastAttemptAt   time.Time
	LastError       string
}

// ReceiverStatus is a registered transmitter and what it last sent.
type ReceiverStatus struct {
	storage.Receiver
	LastReceivedAt time.Time
	LastEvent      string
	LastRefusedAt  time.Time
	LastRefusal    string
}

// maxCounted bounds the messages read per stream for its status.
const maxCounted = 1000

// streamStatuses are the streams with their delivery status.
func (a *Service) streamStatuses(ctx context.Context) ([]StreamStatus, error) {
	streams, err := a.Store.ListStreams(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]StreamStatus, 0, len(streams))
	for _, s := range streams {
		ss := StreamStatus{Stream: s}
		ms, err := a.Store.OutboxMessages(ctx, s.ClientID, "", maxCounted)
		if err != nil {
			return nil, err
		}
		var lastErrAt time.Time
		for _, m := range ms {
			if m.Kind != storage.OutboxSSFPush && m.Kind != storage.OutboxSSFPoll {
				continue
			}
			if m.Status == storage.OutboxFailed {
				ss.Failed++
			} else {
				ss.Pending++
			}
			if m.LastAttemptAt.After(ss.LastAttemptAt) {
				ss.LastAttemptAt = m.LastAttemptAt
			}
			if m.LastError != "" && !m.LastAttemptAt.Before(lastErrAt) {
				ss.LastError, lastErrAt = m.LastError, m.LastAttemptAt
			}
		}
		out = append(out, ss)
	}
	return out, nil
}

// receiverStatuses are the receivers with their latest SET received and
// refused, from the audit log's most recent rows.
func (a *Service) receiverStatuses(ctx context.Context) ([]ReceiverStatus, error) {
	rs, err := a.Store.ListReceivers(ctx)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	evs, err := a.Store.ListAudit(ctx, storage.AuditFilter{Types: []storage.EventType{storage.EventSSFReceived, storage.EventSSFRefused}, Newest: true, Limit: 500})
	if err != nil {
		return nil, err
	}
	out := make([]ReceiverStatus, len(rs))
	for i, r := range rs {
		out[i].Receiver = r
		for _, e := range evs {
			if e.Details["issuer"] != r.Issuer {
				continue
			}
			switch {
			case e.Type == storage.EventSSFReceived && e.Time.After(out[i].LastReceivedAt):
				out[i].LastReceivedAt, out[i].LastEvent = e.Time, e.Details["event"]+": "+e.Details["action"]
			case e.Type == storage.EventSSFRefused && e.Time.After(out[i].LastRefusedAt):
				out[i].LastRefusedAt, out[i].LastRefusal = e.Time, e.Reason
			}
		}
	}
	return out, nil
}
