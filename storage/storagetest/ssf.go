package storagetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

func newStream(clientID string) storage.Stream {
	return storage.Stream{
		ID: "stream-" + clientID, ClientID: clientID, DeliveryMethod: storage.SSFPush,
		EndpointURL: "https://" + clientID + ".example/ssf", AuthorizationHeader: "Bearer x",
		Audience: []string{clientID}, EventsRequested: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"},
		Description: "d", Status: storage.StreamEnabled, CreatedAt: t0, UpdatedAt: t0,
	}
}

func newSSFMessage(id, clientID string, kind storage.OutboxKind, queued time.Time) storage.OutboxMessage {
	return storage.OutboxMessage{
		ID: id, Kind: kind, ClientID: clientID, Target: "https://" + clientID + ".example/ssf",
		Payload: `{"jti":"` + id + `"}`, Status: storage.OutboxPending, QueuedAt: queued, NextAttemptAt: queued.Add(time.Hour),
	}
}

var sharedSignalsTests = []test{
	{"a stream is created once per client, read, updated and listed", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		st := newStream("rp")
		must(t, s.CreateStream(ctx, st))
		again := newStream("rp")
		again.ID = "other"
		wantErr(t, s.CreateStream(ctx, again), storage.ErrAlreadyExists)
		got, err := s.StreamByClient(ctx, "rp")
		must(t, err)
		check(t, st, got)
		_, err = s.StreamByClient(ctx, "nobody")
		wantErr(t, err, storage.ErrNotFound)

		upd := st
		upd.DeliveryMethod, upd.EndpointURL, upd.AuthorizationHeader = storage.SSFPoll, "https://op.example/ssf/poll", ""
		upd.Audience, upd.EventsRequested = []string{"a", "b"}, nil
		upd.Status, upd.Reason, upd.Description = storage.StreamPaused, "maintenance", "new"
		upd.CreatedAt, upd.UpdatedAt = t0.Add(time.Hour), t0.Add(2*time.Hour) // CreatedAt is not mutable
		must(t, s.UpdateStream(ctx, upd))
		got, err = s.StreamByClient(ctx, "rp")
		must(t, err)
		want := upd
		want.CreatedAt = t0
		check(t, want, got)
		wantErr(t, s.UpdateStream(ctx, newStream("nobody")), storage.ErrNotFound)

		must(t, s.CreateStream(ctx, newStream("app")))
		all, err := s.ListStreams(ctx)
		must(t, err)
		check(t, []storage.Stream{newStream("app"), want}, all)
	}},
	{"deleting a stream deletes the SSF messages owed to it, and nothing else", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateStream(ctx, newStream("rp")))
		must(t, s.QueueOutbox(ctx, []storage.OutboxMessage{
			newSSFMessage("p1", "rp", storage.OutboxSSFPush, t0), newSSFMessage("p2", "rp", storage.OutboxSSFPoll, t0),
			newOutboxMessage("bcl", "rp"), newSSFMessage("p3", "app", storage.OutboxSSFPush, t0),
		}))
		must(t, s.DeleteStream(ctx, "rp"))
		_, err := s.StreamByClient(ctx, "rp")
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.DeleteStream(ctx, "rp"), storage.ErrNotFound)
		left, err := s.OutboxMessages(ctx, "", "", 10)
		must(t, err)
		var ids []string
		for _, m := range left {
			ids = append(ids, m.ID)
		}
		check(t, []string{"bcl", "p3"}, ids)
	}},
	{"queued messages are pending; a repeated ID is ErrAlreadyExists and queues none", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		m := newSSFMessage("p1", "rp", storage.OutboxSSFPush, t0)
		must(t, s.QueueOutbox(ctx, []storage.OutboxMessage{m}))
		got, err := s.OutboxMessage(ctx, "p1")
		must(t, err)
		check(t, m, got)
		err = s.QueueOutbox(ctx, []storage.OutboxMessage{newSSFMessage("p2", "rp", storage.OutboxSSFPush, t0), m})
		wantErr(t, err, storage.ErrAlreadyExists)
		_, err = s.OutboxMessage(ctx, "p2")
		wantErr(t, err, storage.ErrNotFound)
		must(t, s.QueueOutbox(ctx, nil))
	}},
	{"poll returns a client's pending messages of one kind, oldest first, until acknowledged", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.QueueOutbox(ctx, []storage.OutboxMessage{
			newSSFMessage("b", "rp", storage.OutboxSSFPoll, t0.Add(time.Second)), newSSFMessage("a", "rp", storage.OutboxSSFPoll, t0),
			newSSFMessage("c", "rp", storage.OutboxSSFPoll, t0.Add(2*time.Second)),
			newSSFMessage("push", "rp", storage.OutboxSSFPush, t0), newSSFMessage("theirs", "app", storage.OutboxSSFPoll, t0),
		}))
		ids := func(ms []storage.OutboxMessage) []string {
			var out []string
			for _, m := range ms {
				out = append(out, m.ID)
			}
			return out
		}
		got, more, err := s.PollOutbox(ctx, "rp", storage.OutboxSSFPoll, 2)
		must(t, err)
		check(t, []string{"a", "b"}, ids(got))
		check(t, true, more)
		// Another client's IDs and another kind are not acknowledged.
		n, err := s.AckOutbox(ctx, "rp", storage.OutboxSSFPoll, []string{"a", "theirs", "push", "unknown"})
		must(t, err)
		check(t, 1, n)
		got, more, err = s.PollOutbox(ctx, "rp", storage.OutboxSSFPoll, 5)
		must(t, err)
		check(t, []string{"b", "c"}, ids(got))
		check(t, false, more)
		_, err = s.OutboxMessage(ctx, "theirs")
		must(t, err)
		_, err = s.OutboxMessage(ctx, "push")
		must(t, err)
		// A given-up message is not polled.
		claimed, err := s.ClaimOutbox(ctx, "w", t0.Add(2*time.Hour), time.Minute, 10)
		must(t, err)
		for _, m := range claimed {
			if m.ID == "b" {
				must(t, s.FailOutbox(ctx, "b", "w", "expired"))
			}
		}
		got, _, err = s.PollOutbox(ctx, "rp", storage.OutboxSSFPoll, 5)
		must(t, err)
		check(t, []string{"c"}, ids(got))
	}},
	{"receivers are created once per issuer, read, listed and deleted", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		r := storage.Receiver{Issuer: "https://tx.example", JWKSURI: "https://tx.example/jwks", Audience: "https://op.example", CreatedAt: t0}
		must(t, s.CreateReceiver(ctx, r))
		wantErr(t, s.CreateReceiver(ctx, r), storage.ErrAlreadyExists)
		r2 := storage.Receiver{Issuer: "https://edr.example", JWKS: `{"keys":[]}`, Audience: "op", CreatedAt: t0}
		must(t, s.CreateReceiver(ctx, r2))
		got, err := s.ReceiverByIssuer(ctx, r.Issuer)
		must(t, err)
		check(t, r, got)
		all, err := s.ListReceivers(ctx)
		must(t, err)
		check(t, []storage.Receiver{r2, r}, all)
		must(t, s.DeleteReceiver(ctx, r.Issuer))
		_, err = s.ReceiverByIssuer(ctx, r.Issuer)
		wantErr(t, err, storage.ErrNotFound)
		wantErr(t, s.DeleteReceiver(ctx, r.Issuer), storage.ErrNotFound)
	}},
	{"deleting a client deletes its stream and the SETs owed to it", func(t *testing.T, s storage.Store) {
		ctx := t.Context()
		must(t, s.CreateClient(ctx, newClient("rp")))
		must(t, s.CreateStream(ctx, newStream("rp")))
		must(t, s.QueueOutbox(ctx, []storage.OutboxMessage{newSSFMessage("p1", "rp", storage.OutboxSSFPush, t0), newOutboxMessage("bcl", "rp")}))
		must(t, s.DeleteClient(ctx, "rp"))
		_, err := s.StreamByClient(ctx, "rp")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.OutboxMessage(ctx, "p1")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.OutboxMessage(ctx, "bcl") // the back-channel logout owed for a session still goes
		must(t, err)
		wantErr(t, s.DeleteClient(ctx, "rp"), storage.ErrNotFound)
	}},
}
