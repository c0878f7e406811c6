package idp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// checkpointType is a checkpoint's JWS "typ" (RFC 8725 §3.11, explicit
// typing): the ES256 key also signs access tokens, and neither must pass
// for the other.
const checkpointType = "keystep-audit-checkpoint+jwt"

// checkpointClaims is a checkpoint's payload.
type checkpointClaims struct {
	Seq      int64  `json:"seq"`
	Hash     string `json:"hash"`
	IssuedAt int64  `json:"iat"`
}

// Checkpoint is a checkpoint whose signature VerifyCheckpoint checked.
type Checkpoint struct {
	storage.AuditCheckpoint
	IssuedAt time.Time
	KeyID    string
}

// signCheckpoint signs c with the ES256 key that signs now.
func (kr *keyring) signCheckpoint(ctx context.Context, c storage.AuditCheckpoint) (string, error) {
	return kr.sign(ctx, "ES256", checkpointType, checkpointClaims{Seq: c.Seq, Hash: c.Hash, IssuedAt: kr.now().Unix()})
}

// SignCheckpoint signs c as the server does, with the ES256 key signing at
// now (`keystep audit checkpoint`).
func SignCheckpoint(ctx context.Context, store storage.Keys, masterKey []byte, now time.Time, c storage.AuditCheckpoint) (string, error) {
	sealer, err := factor.NewSealer(masterKey)
	if err != nil {
		return "", err
	}
	kr := &keyring{store: store, sealer: sealer, now: func() time.Time { return now }}
	return kr.signCheckpoint(ctx, c)
}

// VerifyCheckpoint checks that s is a checkpoint the server signed: an
// ES256 JWS of the checkpoint type under one of the server's signing keys
// in store. The key must unseal with the master key, so a public key that
// someone with write access to the database planted there does not count.
// A key removed from storage (24 h after a rotation retired it) cannot
// vouch any more: verify with a newer checkpoint.
func VerifyCheckpoint(ctx context.Context, store storage.Keys, masterKey []byte, s string) (Checkpoint, error) {
	jws, err := jose.ParseSignedCompact(s, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return Checkpoint{}, fmt.Errorf("not a signed checkpoint: %w", err)
	}
	h := jws.Signatures[0].Header
	if h.KeyID == "" {
		return Checkpoint{}, errors.New("not a checkpoint: no key ID")
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != checkpointType {
		return Checkpoint{}, fmt.Errorf("not a checkpoint: type %q, want %q", typ, checkpointType)
	}
	pub, err := checkpointKey(ctx, store, masterKey, h.KeyID)
	if err != nil {
		return Checkpoint{}, err
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("signature does not verify under key %s: %w", h.KeyID, err)
	}
	var c checkpointClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Seq < 1 || c.Hash == "" {
		return Checkpoint{}, errors.New("signed, but not a checkpoint: want a row number and a hash")
	}
	return Checkpoint{AuditCheckpoint: storage.AuditCheckpoint{Seq: c.Seq, Hash: c.Hash}, IssuedAt: time.Unix(c.IssuedAt, 0).UTC(), KeyID: h.KeyID}, nil
}

// checkpointKey is the public half of the ES256 signing key kid, taken from
// its sealed private key rather than the stored public key.
func checkpointKey(ctx context.Context, store storage.Keys, masterKey []byte, kid string) (*ecdsa.PublicKey, error) {
	sealer, err := factor.NewSealer(masterKey)
	if err != nil {
		return nil, err
	}
	recs, err := store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		if rec.ID != kid {
			continue
		}
		if rec.Algorithm != "ES256" {
			return nil, fmt.Errorf("key %s is %s, not ES256", kid, rec.Algorithm)
		}
		der, err := sealer.Open(rec.Private, keyAD(rec.ID))
		if err != nil {
			return nil, fmt.Errorf("key %s was not sealed with this master key: planted in the database, or the wrong master key", kid)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("parse signing key %s: %w", kid, err)
		}
		ec, ok := priv.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key %s is not an ECDSA key", kid)
		}
		return &ec.PublicKey, nil
	}
	return nil, fmt.Errorf("signed by key %q, which is not one of the server's signing keys (a rotation retires keys and removes them after 24 h: use a newer checkpoint)", kid)
}
