package storage_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// chain builds a log of n rows, the first unkeyed of them with the old
// scheme and the rest keyed with key, as AppendAudit would have written it.
func chain(key storage.AuditKey, unkeyed, n int) []storage.AuditEvent {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var out []storage.AuditEvent
	prev := ""
	for i := range n {
		e := storage.AuditEvent{Seq: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Type: "login.completed",
			UserID: "u1", Outcome: "success", Details: map[string]string{"acr": "sfa"}}
		e.PrevHash = prev
		if i < unkeyed {
			e.Hash = storage.UnkeyedAuditHash(prev, e)
		} else {
			e.Hash = key.Hash(prev, e)
		}
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func testKey(t *testing.T, master string) storage.AuditKey {
	t.Helper()
	k, err := storage.NewAuditKey([]byte(master))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyAuditChain(t *testing.T) {
	key := testKey(t, "master key one, thirty-two bytes")
	other := testKey(t, "master key two, thirty-two bytes")
	// rehash recomputes every link and hash from row from on with the
	// unkeyed scheme: what a database writer without the master key can do.
	rehash := func(events []storage.AuditEvent, from int) []storage.AuditEvent {
		prev := ""
		if from > 1 {
			prev = events[from-2].Hash
		}
		for i := from - 1; i < len(events); i++ {
			events[i].PrevHash = prev
			events[i].Hash = storage.UnkeyedAuditHash(prev, events[i])
			prev = events[i].Hash
		}
		return events
	}
	tests := []struct {
		name        string
		events      []storage.AuditEvent
		key         storage.AuditKey
		wantSeq     int64 // 0: verifies
		wantReason  string
		wantUnkeyed int64
	}{
		{"an empty log verifies", nil, key, 0, "", 0},
		{"a keyed log verifies", chain(key, 0, 4), key, 0, "", 0},
		{"unkeyed rows followed by keyed rows verify", chain(key, 3, 5), key, 0, "", 3},
		{"a keyed log does not verify under another key", chain(key, 0, 4), other, 1, "not the master key", 0},
		{"a log of unkeyed rows only does not verify", chain(key, 3, 3), key, 3, "no keyed row", 3},
		{"a keyed log rewritten whole without the key does not verify", rehash(chain(key, 0, 4), 1), key, 4, "no keyed row", 4},
		{"a keyed log rewritten from row 3 without the key does not verify", rehash(chain(key, 0, 4), 3), key, 3, "follows keyed rows", 0},
		{"an unkeyed prefix rewritten up to the first keyed row does not verify", func() []storage.AuditEvent {
			ev := chain(key, 3, 5)
			ev[1].Reason = "edited"
			ev = rehash(ev[:3], 2)
			ev = append(ev, chain(key, 3, 5)[3:]...)
			ev[3].PrevHash = ev[2].Hash // the link holds; the keyed hash over it does not
			return ev
		}(), key, 4, "keyed hash", 2},
		{"an edited keyed row does not verify", func() []storage.AuditEvent {
			ev := chain(key, 0, 4)
			ev[2].Details = map[string]string{"acr": "phr"}
			return ev
		}(), key, 3, "keyed hash", 0},
		{"a keyed hash written as an unkeyed one does not verify", func() []storage.AuditEvent {
			ev := chain(key, 0, 2)
			ev[1].Hash = strings.TrimPrefix(ev[1].Hash, "k1:")
			return ev
		}(), key, 2, "follows keyed rows", 0},
		{"a missing row is named", func() []storage.AuditEvent {
			ev := chain(key, 0, 4)
			return append(ev[:1], ev[2:]...)
		}(), key, 2, "missing", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, err := storage.VerifyAuditChain(tt.key, tt.events)
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if n := int64(len(tt.events)); head.Seq != n || head.Unkeyed != tt.wantUnkeyed || n > 0 && head.Hash != tt.events[n-1].Hash {
					t.Errorf("head = %+v, want row %d with %d unkeyed", head, n, tt.wantUnkeyed)
				}
				return
			}
			var ce *storage.ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq || !strings.Contains(ce.Reason, tt.wantReason) {
				t.Fatalf("VerifyAuditChain = %v, want a break at row %d naming %q", err, tt.wantSeq, tt.wantReason)
			}
		})
	}
	if _, err := storage.VerifyAuditChain(storage.AuditKey{}, chain(key, 0, 1)); err == nil {
		t.Error("a zero key verified a chain")
	}
}

func TestAuditCheckpointCheck(t *testing.T) {
	key := testKey(t, "master key one, thirty-two bytes")
	log := chain(key, 0, 5)
	tests := []struct {
		name    string
		cp      storage.AuditCheckpoint
		events  []storage.AuditEvent
		wantSeq int64 // 0: passes
		want    string
	}{
		{"a log that reaches the checkpoint passes", storage.AuditCheckpoint{Seq: 3, Hash: log[2].Hash}, log, 0, ""},
		{"a checkpoint of the head passes", storage.AuditCheckpoint{Seq: 5, Hash: log[4].Hash}, log, 0, ""},
		{"a log cut short before the checkpoint fails", storage.AuditCheckpoint{Seq: 5, Hash: log[4].Hash}, log[:3], 4, "newest rows deleted"},
		{"an empty log fails", storage.AuditCheckpoint{Seq: 1, Hash: log[0].Hash}, nil, 1, "newest rows deleted"},
		{"a different row at the checkpoint fails", storage.AuditCheckpoint{Seq: 3, Hash: log[1].Hash}, log, 3, "differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cp.Check(tt.events)
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *storage.ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq || !strings.Contains(ce.Reason, tt.want) {
				t.Fatalf("Check = %v, want a break at row %d naming %q", err, tt.wantSeq, tt.want)
			}
		})
	}
	if err := (storage.AuditCheckpoint{}).Check(log); err == nil {
		t.Error("a checkpoint of row 0 passed")
	}
}
