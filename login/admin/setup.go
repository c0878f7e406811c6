package admin

import (
	"context"
	"time"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// SetupTokenKind is the one-time token kind of the first-admin setup link.
const SetupTokenKind = "setup"

// SetupTTL is how long a setup link works.
const SetupTTL = 24 * time.Hour

// NewSetupLink makes a one-time setup token when there are no users yet. It
// returns "" when users exist. Every start with no users makes a new link;
// older ones stay valid until they expire or one of them is used.
func NewSetupLink(ctx context.Context, store storage.Store, issuer string, now time.Time) (string, error) {
	n, err := store.CountUsers(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	token, err := factor.NewToken()
	if err != nil {
		return "", err
	}
	if err := store.CreateOneTimeToken(ctx, SetupTokenKind, factor.HashToken(token), now.Add(SetupTTL)); err != nil {
		return "", err
	}
	return issuer + "/setup?token=" + token, nil
}
