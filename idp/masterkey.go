package idp

import (
	"context"
	"errors"
	"fmt"

	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// ErrWrongMasterKey is what CheckMasterKey returns, wrapped, when the key
// does not open what the database holds.
var ErrWrongMasterKey = errors.New("the master key does not fit this database")

// CheckMasterKey reports whether masterKey is the key st was written
// with: every signing key must unseal under it and the audit chain's keyed
// MACs must verify. A database restored without its key is useless, so a
// restore checks this before it replaces anything.
func CheckMasterKey(ctx context.Context, st storage.Store, masterKey []byte) error {
	sealer, err := factor.NewSealer(masterKey)
	if err != nil {
		return err
	}
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := sealer.Open(k.Private, keyAD(k.ID)); err != nil {
			return fmt.Errorf("%w: signing key %s does not unseal", ErrWrongMasterKey, k.ID)
		}
	}
	auditKey, err := storage.NewAuditKey(masterKey)
	if err != nil {
		return err
	}
	events, err := st.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		return err
	}
	if _, err := storage.VerifyAuditChain(auditKey, events); err != nil {
		return fmt.Errorf("%w: audit chain: %v", ErrWrongMasterKey, err)
	}
	return nil
}
