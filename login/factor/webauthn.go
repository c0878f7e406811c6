package factor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/keystep/keystep/storage"
)

// Passkeys and security keys (WebAuthn Level 3). A credential is stored as
// a storage.Factor of kind "webauthn" whose Secret is the go-webauthn
// credential in JSON; the ceremonies themselves (options, verification,
// their cookies) are HTTP and live in package login.

// WebAuthnTimeout is how long a WebAuthn ceremony may take.
const WebAuthnTimeout = 5 * time.Minute

// NewWebAuthn configures the relying party from the issuer: the RP ID is
// the issuer's host and the only accepted origin is the issuer's origin.
// WebAuthn does not allow IP addresses as RP IDs; for such issuers it
// returns nil and passkeys are off.
func NewWebAuthn(issuer, displayName string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	if host == "" || strings.Trim(host, "0123456789.:[]") == "" {
		return nil, nil
	}
	return webauthn.New(&webauthn.Config{
		RPID:          host,
		RPDisplayName: displayName,
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: WebAuthnTimeout, TimeoutUVD: WebAuthnTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: WebAuthnTimeout, TimeoutUVD: WebAuthnTimeout},
		},
	})
}

// CredentialFlags is what a stored credential says about itself.
type CredentialFlags struct {
	// UserVerified: the authenticator verified the user when the
	// credential was made.
	UserVerified bool
	// BackupEligible: a synced passkey, not bound to one device.
	BackupEligible bool
	// CloneWarning: the credential is blocked, its signature counter went
	// backwards (WebAuthn §6.1.1).
	CloneWarning bool
	// CrossPlatform: a roaming authenticator, such as a security key.
	CrossPlatform bool
}

// ReadCredentialFlags decodes the flags of a stored credential (a
// storage.Factor's Secret of kind "webauthn"). It reads only the flags, so a
// credential it fails on is corrupt and cannot be completed.
func ReadCredentialFlags(secret []byte) (CredentialFlags, error) {
	var c struct {
		Flags struct {
			UserVerified   bool `json:"userVerified"`
			BackupEligible bool `json:"backupEligible"`
		} `json:"flags"`
		Authenticator struct {
			CloneWarning bool                             `json:"cloneWarning"`
			Attachment   protocol.AuthenticatorAttachment `json:"attachment"`
		} `json:"authenticator"`
	}
	if err := json.Unmarshal(secret, &c); err != nil {
		return CredentialFlags{}, fmt.Errorf("factor: corrupt WebAuthn credential: %w", err)
	}
	return CredentialFlags{
		UserVerified: c.Flags.UserVerified, BackupEligible: c.Flags.BackupEligible,
		CloneWarning: c.Authenticator.CloneWarning, CrossPlatform: c.Authenticator.Attachment == protocol.CrossPlatform,
	}, nil
}

// Trusted reports whether a WebAuthn factor counts as phishing-resistant:
// one added from a session below phr is not until it is trusted (DESIGN
// §3.3; storage.Factor.TrustedAt says when).
func Trusted(f storage.Factor) bool { return !f.TrustedAt.IsZero() }

// PasskeyUser adapts a user and their WebAuthn factors to webauthn.User.
// Credentials[i] is the decoded Secret of Factors[i].
type PasskeyUser struct {
	User        storage.User
	Factors     []storage.Factor // kind "webauthn" only
	Credentials []webauthn.Credential
}

// NewPasskeyUser decodes the user's WebAuthn factors among factors; a
// corrupt one is an error.
func NewPasskeyUser(u storage.User, factors []storage.Factor) (*PasskeyUser, error) {
	p := &PasskeyUser{User: u}
	for _, f := range factors {
		if f.Kind != storage.FactorWebAuthn {
			continue
		}
		var c webauthn.Credential
		if err := json.Unmarshal(f.Secret, &c); err != nil {
			return nil, fmt.Errorf("factor %s: corrupt credential: %w", f.ID, err)
		}
		p.Factors = append(p.Factors, f)
		p.Credentials = append(p.Credentials, c)
	}
	return p, nil
}

// The webauthn.User methods.

func (p *PasskeyUser) WebAuthnID() []byte                         { return []byte(p.User.ID) }
func (p *PasskeyUser) WebAuthnName() string                       { return p.User.Username }
func (p *PasskeyUser) WebAuthnDisplayName() string                { return p.User.Username }
func (p *PasskeyUser) WebAuthnCredentials() []webauthn.Credential { return p.Credentials }

// Find returns the factor holding the credential id and its index, or -1.
func (p *PasskeyUser) Find(id []byte) (storage.Factor, int) {
	for i, c := range p.Credentials {
		if bytes.Equal(c.ID, id) {
			return p.Factors[i], i
		}
	}
	return storage.Factor{}, -1
}

// WithCredential is f holding c, last used at usedAt (zero: unchanged).
func WithCredential(f storage.Factor, c webauthn.Credential, usedAt time.Time) (storage.Factor, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return storage.Factor{}, err
	}
	f.Secret = raw
	if !usedAt.IsZero() {
		f.LastUsedAt = usedAt
	}
	return f, nil
}
