package idp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// Supported signing algorithms. RS256 is the ID-token default because OIDC
// Core §15.1 requires every OP to support it; ES256 signs JWT access tokens.
var signingAlgs = []string{"RS256", "ES256", "EdDSA"}

// keyOverlap is how long a retired key stays in the JWKS: longer than any
// token it signed can live (ID tokens 1 h, access tokens 15 min).
const keyOverlap = 24 * time.Hour

// keyCacheTTL bounds how long a rotation made by another process (the CLI,
// another instance) takes to be seen.
const keyCacheTTL = 30 * time.Second

// keyring loads signing keys from storage, unseals them with the master key
// and caches them briefly.
type keyring struct {
	store  storage.Keys
	sealer *factor.Sealer
	now    func() time.Time
	tracer trace.Tracer // nil: no spans

	mu       sync.RWMutex
	loadedAt time.Time
	keys     []loadedKey
}

type loadedKey struct {
	rec  storage.SigningKey
	priv crypto.Signer
	pub  crypto.PublicKey
}

func (k loadedKey) ID() string { return k.rec.ID }
func (k loadedKey) Algorithm() jose.SignatureAlgorithm {
	return jose.SignatureAlgorithm(k.rec.Algorithm)
}
func (k loadedKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.Algorithm() }
func (k loadedKey) Use() string                                 { return "sig" }

// Key is the private key for op.SigningKey and the public key for op.Key;
// the two interfaces share the method name, so publicKey wraps the latter.
func (k loadedKey) Key() any { return k.priv }

type publicKey struct{ loadedKey }

func (k publicKey) Key() any { return k.pub }

// keyAD binds a sealed private key to its kid, so sealed blobs cannot be swapped between rows.
func keyAD(id string) []byte { return []byte("signing-key:" + id) }

// generateKey makes a key of alg. It does no I/O.
func generateKey(alg string, sealer *factor.Sealer, now time.Time) (storage.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return storage.SigningKey{}, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return storage.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return storage.SigningKey{}, err
	}
	id, err := factor.NewToken()
	if err != nil {
		return storage.SigningKey{}, err
	}
	id = id[:16]
	return storage.SigningKey{
		ID: id, Algorithm: alg,
		Private: sealer.Seal(der, keyAD(id)), Public: pub,
		CreatedAt: now, ActiveAt: now,
	}, nil
}

// EnsureKeys creates a key for every algorithm that has none yet.
func EnsureKeys(ctx context.Context, store storage.Keys, sealer *factor.Sealer, now time.Time) error {
	existing, err := store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, k := range existing {
		if k.ExpiresAt.IsZero() || k.ExpiresAt.After(now) {
			have[k.Algorithm] = true
		}
	}
	for _, alg := range signingAlgs {
		if have[alg] {
			continue
		}
		k, err := generateKey(alg, sealer, now)
		if err != nil {
			return err
		}
		if err := store.CreateSigningKey(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// RotateKeys adds a new key for each algorithm, active from now+activateIn,
// and retires the keys it replaces: they leave the JWKS keyOverlap after the
// new key starts signing, so tokens in flight keep verifying.
func RotateKeys(ctx context.Context, store storage.Keys, sealer *factor.Sealer, now time.Time, activateIn time.Duration) ([]storage.SigningKey, error) {
	var added []storage.SigningKey
	for _, alg := range signingAlgs {
		k, err := generateKey(alg, sealer, now)
		if err != nil {
			return nil, err
		}
		k.ActiveAt = now.Add(activateIn)
		if err := store.CreateSigningKey(ctx, k); err != nil {
			return nil, err
		}
		if err := store.RetireSigningKeys(ctx, alg, k.ID, k.ActiveAt, k.ActiveAt.Add(keyOverlap)); err != nil {
			return nil, err
		}
		added = append(added, k)
	}
	return added, nil
}

func (kr *keyring) load(ctx context.Context) ([]loadedKey, error) {
	now := kr.now()
	kr.mu.RLock()
	if !kr.loadedAt.IsZero() && now.Sub(kr.loadedAt) < keyCacheTTL && now.After(kr.loadedAt) {
		keys := kr.keys
		kr.mu.RUnlock()
		return keys, nil
	}
	kr.mu.RUnlock()
	kr.mu.Lock()
	defer kr.mu.Unlock()
	recs, err := kr.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]loadedKey, 0, len(recs))
	for _, rec := range recs {
		if !rec.ExpiresAt.IsZero() && !rec.ExpiresAt.After(now) {
			continue
		}
		der, err := kr.sealer.Open(rec.Private, keyAD(rec.ID))
		if err != nil {
			return nil, fmt.Errorf("unseal signing key %s (wrong master key?): %w", rec.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("parse signing key %s: %w", rec.ID, err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("signing key %s is not a signer", rec.ID)
		}
		keys = append(keys, loadedKey{rec: rec, priv: signer, pub: signer.Public()})
	}
	kr.keys, kr.loadedAt = keys, now
	return keys, nil
}

// invalidate forces the next use to reload from storage.
func (kr *keyring) invalidate() {
	kr.mu.Lock()
	kr.loadedAt = time.Time{}
	kr.mu.Unlock()
}

// signing returns the key that signs with alg now: the latest activated one.
func (kr *keyring) signing(ctx context.Context, alg string) (loadedKey, error) {
	keys, err := kr.load(ctx)
	if err != nil {
		return loadedKey{}, err
	}
	now := kr.now()
	var best *loadedKey
	for i, k := range keys {
		if k.rec.Algorithm != alg || k.rec.ActiveAt.After(now) {
			continue
		}
		if best == nil || k.rec.ActiveAt.After(best.rec.ActiveAt) {
			best = &keys[i]
		}
	}
	if best == nil {
		return loadedKey{}, errors.New("no active signing key for " + alg)
	}
	return *best, nil
}

// sign signs claims as a compact JWS with the key that signs with alg now,
// typed typ: the one way Keystep signs its own JWTs other than the ID
// tokens the library signs (access tokens, logout tokens, SETs, audit
// checkpoints).
func (kr *keyring) sign(ctx context.Context, alg, typ string, claims any) (jwt string, err error) {
	if kr.tracer != nil {
		var span trace.Span
		ctx, span = kr.tracer.Start(ctx, "keystep.sign", trace.WithAttributes(
			attribute.String("keystep.sign.alg", alg), attribute.String("keystep.sign.typ", typ)))
		defer func() {
			if err != nil {
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}()
	}
	k, err := kr.signing(ctx, alg)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	a := jose.SignatureAlgorithm(alg)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: a, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.ID(), Algorithm: alg}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// published returns every key in the JWKS: active, upcoming and retired-but-overlapping.
func (kr *keyring) published(ctx context.Context) ([]op.Key, error) {
	keys, err := kr.load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = publicKey{k}
	}
	return out, nil
}
