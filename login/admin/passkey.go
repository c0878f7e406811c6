package admin

import (
	"context"
	"errors"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// ConfirmPasskey trusts a user's passkey or security key as
// phishing-resistant at once (DESIGN §3.3), for an administrator who has
// made sure it is the user's own: a key added from a session below phr
// otherwise waits for its cooling-off and a use from a known device and
// network. The change is audited; the reason is optional.
func (a *Service) ConfirmPasskey(ctx context.Context, by Actor, userID, factorID string, now time.Time) (storage.Factor, error) {
	f, err := a.Store.FactorByID(ctx, factorID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && (f.UserID != userID || f.Kind != storage.FactorWebAuthn) {
		return storage.Factor{}, ErrNoSuchPasskey
	}
	if err != nil {
		return storage.Factor{}, err
	}
	if factor.Trusted(f) {
		return f, ErrAlreadyTrusted
	}
	d := beforeAfter(map[string]any{"name": f.Name, "trusted": false}, map[string]any{"name": f.Name, "trusted": true})
	d["factor"] = f.ID
	if err := a.record(ctx, by, storage.EventAdminUserConfirmPasskey, userID, "", d); err != nil {
		return storage.Factor{}, err
	}
	err = a.Store.TrustFactor(ctx, userID, f.ID, now)
	switch {
	case errors.Is(err, storage.ErrConflict):
		return f, a.failed(ctx, by, storage.EventAdminUserConfirmPasskey, userID, "", ErrAlreadyTrusted)
	case errors.Is(err, storage.ErrNotFound):
		return storage.Factor{}, a.failed(ctx, by, storage.EventAdminUserConfirmPasskey, userID, "", ErrNoSuchPasskey)
	case err != nil:
		return storage.Factor{}, a.failed(ctx, by, storage.EventAdminUserConfirmPasskey, userID, "", err)
	}
	f.TrustedAt = now
	return f, nil
}

// ConfirmPasskey errors.
var (
	ErrNoSuchPasskey  = errors.New("the user has no passkey or security key with that ID")
	ErrAlreadyTrusted = errors.New("that passkey or security key already counts as phishing-resistant")
)
