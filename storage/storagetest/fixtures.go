package storagetest

import (
	"time"

	"github.com/keystep/keystep/storage"
)

// Fixtures set every field to a non-zero value, so a column a backend forgets
// shows up in the diff.

func newUser(id, username string) storage.User {
	return storage.User{
		ID:              id,
		Username:        username,
		Email:           username + "@example.com",
		EmailVerified:   true,
		EmailVerifiedAt: t0.Add(time.Minute),
		PasswordHash:    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
		Admin:           true,
		Disabled:        true,
		Locale:          "fr",
		CreatedAt:       t0,
		UpdatedAt:       t0.Add(time.Second),
	}
}

func newClient(id string) storage.Client {
	return storage.Client{
		ID:                               id,
		Name:                             "Client " + id,
		SecretHash:                       "secret-hash-" + id,
		RedirectURIs:                     []string{"https://rp.example/cb", "http://127.0.0.1/cb"},
		PostLogoutRedirectURIs:           []string{"https://rp.example/bye"},
		Public:                           true,
		Native:                           true,
		AuthMethod:                       "client_secret_basic",
		GrantTypes:                       []string{"authorization_code", "refresh_token"},
		IDTokenAlg:                       "ES256",
		AccessTokenFormat:                "opaque",
		JWKS:                             `{"keys":[]}`,
		MinACR:                           "urn:keystep:acr:mfa",
		Strict:                           true,
		FirstParty:                       true,
		RequirePKCE:                      true,
		RateLimit:                        250,
		RefreshReuseInterval:             30 * time.Second,
		RequirePAR:                       true,
		DPoPBoundAccessTokens:            true,
		Profile:                          storage.ProfileFAPI2,
		BackchannelLogoutURI:             "https://rp.example/backchannel",
		BackchannelLogoutSessionRequired: true,
		AuthorizationDetailsTypes:        []string{"payment_initiation"},
		AdminAPI:                         storage.AdminAPIWrite,
		CreatedAt:                        t0,
		UpdatedAt:                        t0.Add(time.Second),
	}
}

func newAuthRequest(id string) storage.AuthRequest {
	maxAge := int64(300)
	return storage.AuthRequest{
		ID:                  id,
		ClientID:            "rp",
		RedirectURI:         "https://rp.example/cb",
		Scopes:              []string{"openid", "profile", "offline_access"},
		ResponseType:        "code",
		ResponseMode:        "query",
		State:               "state-" + id,
		Nonce:               "nonce-" + id,
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256",
		Prompt:              []string{"login", "consent"},
		MaxAge:              &maxAge,
		ACRValues:           []string{"phr", "urn:keystep:acr:mfa"},
		Requirement: storage.Requirement{
			ACR: []string{"phrh", "phr", "urn:keystep:acr:mfa"}, Essential: true,
			ClientMin: "urn:keystep:acr:mfa", Strict: true, ScopeMins: []string{"phr"},
		},
		LoginHint:            "alice",
		IDTokenHintSubject:   "user-1",
		UILocales:            []string{"de-CH", "en"},
		BrowserBinding:       "binding-" + id,
		DPoPJKT:              "jkt-" + id,
		AuthorizationDetails: `[{"type":"payment_initiation"}]`,
		PolicyVersion:        3,
		CreatedAt:            t0,
		ExpiresAt:            t0.Add(10 * time.Minute),
	}
}

var authResult = storage.AuthResult{
	Subject:   "user-1",
	ACR:       "phr",
	AMR:       []string{"pwd", "pop", "hwk", "mfa"},
	AuthTime:  t0.Add(time.Minute),
	SessionID: "sid-1",
}

// completedWithCode stores r, completes it with authResult and attaches
// codeHash, returning the request as the store should now hold it.
func completedWithCode(r storage.AuthRequest, codeHash string) storage.AuthRequest {
	r.Done = true
	r.Subject = authResult.Subject
	r.ACR = authResult.ACR
	r.AMR = authResult.AMR
	r.AuthTime = authResult.AuthTime
	r.SessionID = authResult.SessionID
	r.CodeHash = codeHash
	r.CodeExpiresAt = t0.Add(2 * time.Minute)
	return r
}

func newSession(id, userID string) storage.Session {
	return storage.Session{
		ID:     id,
		UserID: userID,
		Factors: []storage.FactorEvent{
			{Method: "pwd", At: t0},
			{Method: "webauthn", At: t0.Add(time.Second), CredentialID: "cred-1", UserVerified: true, DeviceBound: true, Request: "ar-1"},
		},
		IP:        "192.0.2.1",
		UserAgent: "Mozilla/5.0",
		CreatedAt: t0,
		LastSeen:  t0.Add(time.Second),
		ExpiresAt: t0.Add(12 * time.Hour),
	}
}

func newGrant(grantID string) storage.Grant {
	return storage.Grant{
		GrantID:              grantID,
		ClientID:             "rp",
		Subject:              "user-1",
		Scopes:               []string{"openid", "offline_access"},
		Audience:             []string{"rp", "https://api.example"},
		ACR:                  "urn:keystep:acr:mfa",
		AMR:                  []string{"pwd", "otp", "mfa"},
		AuthTime:             t0,
		SessionID:            "sid-1",
		JKT:                  "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		AuthorizationDetails: `[{"creditorName":"Example Supplies Ltd","type":"payment_initiation"}]`,
	}
}

func newAccessToken(id string, g storage.Grant, refreshID string) storage.AccessToken {
	return storage.AccessToken{
		ID:        id,
		Grant:     g,
		RefreshID: refreshID,
		CreatedAt: t0,
		ExpiresAt: t0.Add(15 * time.Minute),
	}
}

func newRefreshToken(id, familyID string, g storage.Grant) storage.RefreshToken {
	return storage.RefreshToken{
		ID:        id,
		FamilyID:  familyID,
		Grant:     g,
		CreatedAt: t0,
		ExpiresAt: t0.Add(24 * time.Hour),
	}
}

func newFamily(id string, g storage.Grant) storage.Family {
	return storage.Family{
		ID:        id,
		Grant:     g,
		CreatedAt: t0,
		ExpiresAt: t0.Add(24 * time.Hour),
	}
}

func newSigningKey(id, alg string, created time.Time) storage.SigningKey {
	return storage.SigningKey{
		ID:        id,
		Algorithm: alg,
		Private:   []byte("sealed-private-" + id),
		Public:    []byte("public-" + id),
		CreatedAt: created,
		ActiveAt:  created.Add(time.Hour),
	}
}

func newFactor(id, userID string, kind storage.FactorKind, created time.Time) storage.Factor {
	return storage.Factor{
		ID:         id,
		UserID:     userID,
		Kind:       kind,
		Name:       "Phone " + id,
		Secret:     []byte("sealed-seed-" + id),
		CreatedAt:  created,
		LastUsedAt: created.Add(time.Minute),
	}
}

func newAuditEvent(typ storage.EventType, userID string) storage.AuditEvent {
	return storage.AuditEvent{
		Time:      t0,
		Type:      typ,
		UserID:    userID,
		ActorID:   "admin-1",
		ClientID:  "rp",
		IP:        "192.0.2.1",
		UserAgent: "Mozilla/5.0",
		Outcome:   "success",
		Reason:    "because",
		Details:   map[string]string{"acr": "phr", "factor": "totp"},
	}
}
