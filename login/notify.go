package login

import (
	"context"
	"encoding/json"
	"strings"
	"unicode"

	"github.com/keystep/keystep/idp/risk"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/login/web"
	"github.com/keystep/keystep/storage"
)

// activityPath is where a notice's link goes: the portal's activity.
const activityPath = "/account#activity"

// notify tells u by email what just happened to the account (k; factor
// names the way to sign in for FactorAdded and FactorRemoved, nil for
// the others): when, from
// where, and a link to the portal's activity. Only ever to a verified
// address — an unconfirmed one may be anyone's — and only when mail is set
// up. Each change calls it next to its audit row, after the change.
func (h *Handler) notify(ctx context.Context, u storage.User, k mail.Kind, factor factorText) error {
	if !u.EmailVerified || u.Email == "" {
		return nil
	}
	var name string
	if factor != nil {
		name = factor(h.mailTr(u))
	}
	return h.queueMail(ctx, u, u.Email, k, mail.Data{Factor: name, Link: h.link(activityPath)})
}

// notifySignIn sends the NewSignIn notice for a completed sign-in whose
// assessment ra found both the device and the network new (never for a
// first sign-in, which has no history to be new against).
func (h *Handler) notifySignIn(ctx context.Context, u storage.User, ra risk.Assessment) error {
	if !ra.Has(risk.NewDevice) || !ra.Has(risk.NewNetwork) {
		return nil
	}
	return h.notify(ctx, u, mail.NewSignIn, nil)
}

// mailOn reports whether email is set up.
func (h *Handler) mailOn() bool { return h.cfg.Mail != nil }

// queueMail queues the message k about u's account to the address to in
// the outbox (storage.OutboxMail), filled with the request's time, IP and
// device, rendered now in u's language (mailTr). Without mail set up it
// queues nothing.
func (h *Handler) queueMail(ctx context.Context, u storage.User, to string, k mail.Kind, d mail.Data) error {
	if !h.mailOn() {
		return nil
	}
	m, err := h.mailMessage(ctx, u, to, k, d)
	if err != nil {
		return err
	}
	return h.cfg.Store.QueueOutbox(ctx, []storage.OutboxMessage{m})
}

// mailMessage is the outbox message queueMail queues, for callers that
// queue it with a change of their own in one storage call.
func (h *Handler) mailMessage(ctx context.Context, u storage.User, to string, k mail.Kind, d mail.Data) (storage.OutboxMessage, error) {
	info, tr := web.Info(ctx), h.mailTr(u)
	d.Product, d.Username, d.When, d.IP, d.Device = h.cfg.ProductName, u.Username, h.cfg.Now(), info.IP, mail.Device(tr, info.UserAgent)
	m, err := mail.Compose(tr, k, to, d)
	if err != nil {
		return storage.OutboxMessage{}, err
	}
	payload, err := json.Marshal(mail.Queued{UserID: u.ID, Message: m})
	if err != nil {
		return storage.OutboxMessage{}, err
	}
	id, err := factor.NewToken()
	if err != nil {
		return storage.OutboxMessage{}, err
	}
	return storage.OutboxMessage{
		ID: id, Kind: storage.OutboxMail, Target: "mailto:" + to, Payload: string(payload),
		QueuedAt: d.When, NextAttemptAt: d.When,
	}, nil
}

// link is the absolute URL of path (and query) on this server.
func (h *Handler) link(path string) string { return strings.TrimSuffix(h.cfg.Issuer, "/") + path }

// factorText names a way to sign in in a printer's language, for a
// notice (notify).
type factorText func(p *i18n.Printer) string

// factorWords names a factor in the portal's words (UI.md) with the name
// the person gave it: `authenticator app "Phone"`. The name goes into mail,
// so only mailName of it is kept.
func factorWords(k storage.FactorKind, name string) factorText {
	name = mailName(name)
	return func(p *i18n.Printer) string {
		switch {
		case k == storage.FactorTOTP && name != "":
			return p.T("authenticator app \"%s\"", name)
		case k == storage.FactorTOTP:
			return p.T("authenticator app")
		case k == storage.FactorWebAuthn && name != "":
			return p.T("passkey or security key \"%s\"", name)
		case k == storage.FactorWebAuthn:
			return p.T("passkey or security key")
		case name != "":
			return string(k) + ` "` + name + `"`
		}
		return string(k)
	}
}

// allFactors names every second factor at once, for the notice that
// they were all removed to set up new ones.
func allFactors(p *i18n.Printer) string {
	return p.T("every authenticator app, passkey and recovery code")
}

// mailName is what mail may repeat of a name a person typed: letters,
// digits, spaces, hyphens and apostrophes, at most 32 of them. Dots,
// slashes, colons and @ are dropped, so a name can never read as an
// address or a link in a genuine message from Keystep.
func mailName(name string) string {
	var b strings.Builder
	n := 0
	for _, r := range name {
		if n == 32 {
			break
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || r == '-' || r == '\'' {
			b.WriteRune(r)
			n++
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
