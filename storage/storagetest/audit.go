package storagetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// AuditKey keys the suite's audit chains (from a fixed test master key);
// backends' own tests use it too.
var AuditKey = func() storage.AuditKey {
	k, err := storage.NewAuditKey([]byte("storagetest master key, 32 bytes"))
	if err != nil {
		panic(err)
	}
	return k
}()

// verifyChain fails t unless events form a chain under AuditKey.
func verifyChain(t *testing.T, events []storage.AuditEvent) {
	t.Helper()
	if _, err := storage.VerifyAuditChain(AuditKey, events); err != nil {
		t.Fatal(err)
	}
}

var auditTests = []test{
	{"appended events get contiguous seqs and a chain that verifies after reading back", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		nilDetails := newAuditEvent("login.success", "u1")
		nilDetails.Details = nil
		emptyDetails := newAuditEvent("login.failure", "u1")
		emptyDetails.Details = map[string]string{}
		zoned := newAuditEvent("stepup.satisfied", "u1")
		zoned.Time = t0.In(time.FixedZone("EST", -5*3600))
		forged := newAuditEvent(storage.EventFactorEnrolled, "u1")
		forged.Seq, forged.PrevHash, forged.Hash = 99, "forged", "forged" // the store assigns these

		var appended []storage.AuditEvent
		prev := ""
		for i, e := range []storage.AuditEvent{nilDetails, emptyDetails, zoned, forged} {
			got, err := s.AppendAudit(ctx, AuditKey, e)
			must(t, err)
			if got.Seq != int64(i+1) || got.PrevHash != prev || got.Hash != AuditKey.Hash(prev, got) {
				t.Fatalf("event %d: seq %d, prev %q, hash %q: not chained", i, got.Seq, got.PrevHash, got.Hash)
			}
			prev = got.Hash
			appended = append(appended, got)
		}
		checkUTC(t, reflect.ValueOf(appended), "appended")

		got, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		check(t, appended, got)
		verifyChain(t, got)
		// The hash covers Details, so nil and empty must come back as they went in.
		if got[0].Details != nil || got[1].Details == nil {
			t.Errorf("Details came back as %#v and %#v, want nil and empty", got[0].Details, got[1].Details)
		}
	}},
	{"appends are keyed: another key or plain SHA-256 does not reproduce the chain", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		other, err := storage.NewAuditKey([]byte("another master key, also 32 byte"))
		must(t, err)
		for _, typ := range []storage.EventType{"login.success", "login.failure"} {
			_, err := s.AppendAudit(ctx, AuditKey, newAuditEvent(typ, "u1"))
			must(t, err)
		}
		got, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		verifyChain(t, got)
		for _, e := range got {
			if e.Hash == storage.UnkeyedAuditHash(e.PrevHash, e) || e.Hash == other.Hash(e.PrevHash, e) {
				t.Errorf("row %d: hash %s is not keyed with the store's caller's key", e.Seq, e.Hash)
			}
		}
		if _, err := storage.VerifyAuditChain(other, got); err == nil {
			t.Error("the chain verifies under another key")
		}
	}},
	{"an append without a key is refused and writes nothing", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		if _, err := s.AppendAudit(ctx, storage.AuditKey{}, newAuditEvent("login.success", "u1")); err == nil {
			t.Fatal("AppendAudit with a zero key succeeded")
		}
		got, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		check(t, []storage.AuditEvent(nil), got)
	}},
	{"an empty audit log lists nothing and verifies", func(t *testing.T, s storage.Store) {
		got, err := s.ListAudit(t.Context(), storage.AuditFilter{})
		must(t, err)
		check(t, []storage.AuditEvent(nil), got)
		verifyChain(t, got)
	}},
	{"audit filters narrow by field, time and seq, newest first and limited", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		rows := []struct{ typ, user, client, outcome string }{
			{"login.success", "u1", "rp1", "success"}, // seq 1, t0
			{"login.failure", "u2", "rp1", "failure"}, // seq 2, t0+1m
			{"login.success", "u1", "rp2", "success"}, // seq 3, t0+2m
			{"stepup.failed", "u1", "rp2", "denied"},  // seq 4, t0+3m
			{"login.success", "u2", "rp2", "success"}, // seq 5, t0+4m
		}
		for i, r := range rows {
			e := newAuditEvent(storage.EventType(r.typ), r.user)
			e.ClientID, e.Outcome = r.client, r.outcome
			e.Time = t0.Add(time.Duration(i) * time.Minute)
			_, err := s.AppendAudit(ctx, AuditKey, e)
			must(t, err)
		}
		for _, tc := range []struct {
			name string
			f    storage.AuditFilter
			want []int64
		}{
			{"everything", storage.AuditFilter{}, []int64{1, 2, 3, 4, 5}},
			{"by user", storage.AuditFilter{UserID: "u1"}, []int64{1, 3, 4}},
			{"by client", storage.AuditFilter{ClientID: "rp1"}, []int64{1, 2}},
			{"by type", storage.AuditFilter{Type: "login.success"}, []int64{1, 3, 5}},
			{"by outcome", storage.AuditFilter{Outcome: "denied"}, []int64{4}},
			{"by any of types", storage.AuditFilter{Types: []storage.EventType{"login.failure", "stepup.failed"}}, []int64{2, 4}},
			{"any of types, newest first, limited", storage.AuditFilter{Types: []storage.EventType{"login.success", "stepup.failed"}, UserID: "u1", Newest: true, Limit: 2}, []int64{4, 3}},
			{"combined", storage.AuditFilter{UserID: "u2", Type: "login.success"}, []int64{5}},
			{"since is inclusive", storage.AuditFilter{Since: t0.Add(3 * time.Minute)}, []int64{4, 5}},
			{"until is exclusive", storage.AuditFilter{Until: t0.Add(2 * time.Minute)}, []int64{1, 2}},
			{"a time window", storage.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []int64{2, 3}},
			{"after a seq", storage.AuditFilter{AfterSeq: 3}, []int64{4, 5}},
			{"limited", storage.AuditFilter{Limit: 2}, []int64{1, 2}},
			{"newest first", storage.AuditFilter{Newest: true}, []int64{5, 4, 3, 2, 1}},
			{"newest first, limited", storage.AuditFilter{Newest: true, Limit: 2, UserID: "u1"}, []int64{4, 3}},
			{"no match", storage.AuditFilter{UserID: "nobody"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, tc.f)
				must(t, err)
				var seqs []int64
				for _, e := range got {
					seqs = append(seqs, e.Seq)
				}
				check(t, tc.want, seqs)
			})
		}
	}},
	{"20 concurrent appends keep one chain with seqs 1 to 20", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		errs := race(20, func(i int) error {
			_, err := s.AppendAudit(ctx, AuditKey, newAuditEvent(storage.EventType(fmt.Sprintf("event.%d", i)), "u1"))
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		got, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		if len(got) != 20 {
			t.Fatalf("listed %d events, want 20", len(got))
		}
		verifyChain(t, got)
		seen := map[storage.EventType]bool{}
		for _, e := range got {
			seen[e.Type] = true
		}
		if len(seen) != 20 {
			t.Errorf("%d distinct events stored, want 20", len(seen))
		}
	}},
}
