package login

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// A phishable session cannot mint phishing resistance (DESIGN §3.3). A
// passkey or security key added from a session that was not itself at phr
// may belong to whoever relayed the password and code in real time, so it
// counts as mfa only — a valid second factor, with a truthful amr — until it
// is trusted: when it is used from a device and a network the user has
// signed in from before, once the cooling-off after it was added is over,
// or when an administrator confirms it. One added from a phr session is
// trusted at once. storage.Factor.TrustedAt records when; the session's
// factor event says whether the credential was trusted when it was used,
// and idp/stepup decides from that alone.

// DefaultPasskeyCoolingOff is how long after it was added a passkey from a
// session below phr waits before a use can make it phishing-resistant.
const DefaultPasskeyCoolingOff = 24 * time.Hour

// trusted reports whether a WebAuthn factor counts as phishing-resistant.
func trusted(f storage.Factor) bool { return !f.TrustedAt.IsZero() }

// trustFrom is when an untrusted WebAuthn factor's cooling-off ends.
func (h *Handler) trustFrom(f storage.Factor) time.Time {
	return f.CreatedAt.Add(h.cfg.PasskeyCoolingOff)
}

// ripe reports whether an untrusted WebAuthn factor is past its cooling-off:
// a use from a known device and network now would trust it.
func (h *Handler) ripe(f storage.Factor) bool {
	return f.Kind == storage.FactorWebAuthn && !factor.Trusted(f) && !h.cfg.Now().Before(h.trustFrom(f))
}

// knownPlace reports whether the request comes from a device and a network
// that completed a sign-in for the user before the moment before (when the
// session at hand began, or now without one) and before the session that
// added any ripe factor began: the user's own by their history, not merely
// because this session's own sign-in was recorded, nor because the relayed
// sign-in that added the credential recorded the relaying adversary's
// device and network (who could otherwise come back after the cooling-off
// from there). It reads the history only when one of factors is ripe,
// since nothing else depends on it.
func (h *Handler) knownPlace(r *http.Request, userID string, factors []storage.Factor, before time.Time) (bool, error) {
	anyRipe := false
	for _, f := range factors {
		if !h.ripe(f) {
			continue
		}
		anyRipe = true
		if !f.AddedInSessionAt.IsZero() && f.AddedInSessionAt.Before(before) {
			before = f.AddedInSessionAt
		}
	}
	device := h.cfg.Cookies.ExistingBrowserBinding(r)
	addr, err := netip.ParseAddr(web.Info(r.Context()).IP)
	if !anyRipe || device == "" || err != nil {
		return false, nil
	}
	dev, net, err := h.cfg.Store.KnownSince(r.Context(), userID, device, risk.Network(addr).String())
	if err != nil {
		return false, err
	}
	return !dev.IsZero() && dev.Before(before) && !net.IsZero() && net.Before(before), nil
}

// newPlaceSession is what a passkey added now records as AddedInSessionAt:
// the start of the adding session when that session came from a device and
// a network both first seen in it, by a user who had signed in before it —
// the shape of a relayed sign-in (new device and network: medium risk).
// Such a place never vouches for the key (knownPlace): the relaying
// adversary's machine was recorded as the user's by the relay itself.
// Otherwise zero: a key added on the user's first sign-in ever, or from a
// device or network used before, is vouched for as usual.
func (h *Handler) newPlaceSession(r *http.Request, userID string, sess storage.Session) (time.Time, error) {
	ctx := r.Context()
	first, err := h.cfg.Store.FirstSignInAt(ctx, userID)
	if err != nil || first.IsZero() || !first.Before(sess.CreatedAt) {
		return time.Time{}, err
	}
	addr, err := netip.ParseAddr(web.Info(ctx).IP)
	if err != nil {
		return time.Time{}, nil
	}
	dev, net, err := h.cfg.Store.KnownSince(ctx, userID, h.cfg.Cookies.ExistingBrowserBinding(r), risk.Network(addr).String())
	if err != nil {
		return time.Time{}, err
	}
	seenBefore := func(t time.Time) bool { return !t.IsZero() && t.Before(sess.CreatedAt) }
	if seenBefore(dev) || seenBefore(net) {
		return time.Time{}, nil
	}
	return sess.CreatedAt, nil
}

// phrCounts is which WebAuthn factors may count toward phr for a request:
// the trusted ones and, from a known device and network, the ripe ones,
// since using one there trusts it (promote).
func (h *Handler) phrCounts(known bool) func(storage.Factor) bool {
	return func(f storage.Factor) bool { return factor.Trusted(f) || known && h.ripe(f) }
}

// promote trusts a ripe WebAuthn factor just verified from a device and
// network known before the moment before, audited first, and updates f.
// Anything else is left as it is.
func (h *Handler) promote(r *http.Request, userID, clientID string, f *storage.Factor, factors []storage.Factor, before time.Time) error {
	if !h.ripe(*f) {
		return nil
	}
	known, err := h.knownPlace(r, userID, factors, before)
	if err != nil || !known {
		return err
	}
	ctx := r.Context()
	now := h.cfg.Now()
	if err := h.cfg.Audit.Record(ctx, storage.AuditEvent{Type: storage.EventFactorTrusted, UserID: userID, ActorID: userID, ClientID: clientID, Outcome: "success",
		Reason: "used from a known device and network after the cooling-off", Details: map[string]string{"factor": f.ID, "name": f.Name}}); err != nil {
		return err
	}
	if err := h.cfg.Store.TrustFactor(ctx, userID, f.ID, now); err != nil && !errors.Is(err, storage.ErrConflict) {
		return err
	}
	f.TrustedAt = now
	return nil
}
