package dpop

import (
	"crypto"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Prover makes DPoP proofs (RFC 9449 §4.2) with one private key: the
// client side of [Verify], for apps, tests and `keystep bench`.
type Prover struct {
	signer jose.Signer
	// JKT is the key's thumbprint: the cnf.jkt of tokens bound to it, and
	// the dpop_jkt of an authorization request (§10).
	JKT string
}

// NewProver returns a Prover signing with key under alg, one of [Algs]
// (ES256 with a P-256 key is the usual choice).
func NewProver(key crypto.Signer, alg jose.SignatureAlgorithm) (*Prover, error) {
	pub := jose.JSONWebKey{Key: key.Public()}
	if !keyFits(pub.Key, alg) {
		return nil, fmt.Errorf("dpop: the key does not fit alg %s", alg)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return nil, err
	}
	jkt, err := Thumbprint(pub)
	if err != nil {
		return nil, err
	}
	return &Prover{signer: s, JKT: jkt}, nil
}

// Proof returns a proof for one request: method and url (htm, htu; the
// query and fragment are left out), the access token sent with it, if
// any (ath), and the server's nonce, if it gave one.
func (p *Prover) Proof(method, url, accessToken, nonce string, now time.Time) (string, error) {
	htu, err := NormalizeURL(url)
	if err != nil {
		return "", fmt.Errorf("dpop: htu %q: %w", url, err)
	}
	c := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": now.Unix()}
	if accessToken != "" {
		c["ath"] = ATH(accessToken)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
