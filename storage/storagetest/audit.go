package storagetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

var auditTests = []test{
	{"appended events get contiguous seqs and a chain that verifies after reading back", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		nilDetails := newAuditEvent("login.success", "u1")
		nilDetails.Details = nil
		emptyDetails := newAuditEvent("login.failure", "u1")
		emptyDetails.Details = map[string]string{}
		zoned := newAuditEvent("stepup.satisfied", "u1")
		zoned.Time = t0.In(time.FixedZone("EST", -5*3600))
		forged := newAuditEvent("factor.enrolled", "u1")
		forged.Seq, forged.PrevHash, forged.Hash = 99, "forged", "forged" // the store assigns these

		var appended []storage.AuditEvent
		prev := ""
		for i, e := range []storage.AuditEvent{nilDetails, emptyDetails, zoned, forged} {
			got, err := s.AppendAudit(ctx, e)
			must(t, err)
			if got.Seq != int64(i+1) || got.PrevHash != prev || got.Hash != storage.AuditHash(prev, got) {
				t.Fatalf("event %d: seq %d, prev %q, hash %q: not chained", i, got.Seq, got.PrevHash, got.Hash)
			}
			prev = got.Hash
			appended = append(appended, got)
		}
		checkUTC(t, reflect.ValueOf(appended), "appended")

		got, err := s.ListAudit(ctx, storage.AuditFilter{})
		must(t, err)
		check(t, appended, got)
		must(t, storage.VerifyAuditChain(got))
		// The hash covers Details, so nil and empty must come back as they went in.
		if got[0].Details != nil || got[1].Details == nil {
			t.Errorf("Details came back as %#v and %#v, want nil and empty", got[0].Details, got[1].Details)
		}
	}},
	{"an empty audit log lists nothing and verifies", func(t *testing.T, s storage.Store) {
		got, err := s.ListAudit(t.Context(), storage.AuditFilter{})
		must(t, err)
		check(t, []storage.AuditEvent(nil), got)
		must(t, storage.VerifyAuditChain(got))
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
			e := newAuditEvent(r.typ, r.user)
			e.ClientID, e.Outcome = r.client, r.outcome
			e.Time = t0.Add(time.Duration(i) * time.Minute)
			_, err := s.AppendAudit(ctx, e)
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
			_, err := s.AppendAudit(ctx, newAuditEvent(fmt.Sprintf("event.%d", i), "u1"))
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
		must(t, storage.VerifyAuditChain(got))
		seen := map[string]bool{}
		for _, e := range got {
			seen[e.Type] = true
		}
		if len(seen) != 20 {
			t.Errorf("%d distinct events stored, want 20", len(seen))
		}
	}},
}
