package sqlstore

import (
	"context"

	"github.com/keystep/keystep/storage"
)

const streamCols = `client_id, id, delivery_method, endpoint_url, authorization_header, audience, events_requested,
	description, status, reason, created_at, updated_at`

func scanStream(sc Row) (storage.Stream, error) {
	var st storage.Stream
	err := sc.Scan(&st.ClientID, &st.ID, &st.DeliveryMethod, &st.EndpointURL, &st.AuthorizationHeader, js(&st.Audience),
		js(&st.EventsRequested), &st.Description, &st.Status, &st.Reason, at(&st.CreatedAt), at(&st.UpdatedAt))
	return st, err
}

func (s *Store) CreateStream(ctx context.Context, st storage.Stream) error {
	_, err := s.exec(ctx, `INSERT INTO ssf_streams (`+streamCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ClientID, st.ID, st.DeliveryMethod, st.EndpointURL, st.AuthorizationHeader, jsonOf(st.Audience),
		jsonOf(st.EventsRequested), st.Description, st.Status, st.Reason, nanos(st.CreatedAt), nanos(st.UpdatedAt))
	if err != nil {
		return s.fail("create stream", s.insertErr(err))
	}
	return nil
}

func (s *Store) StreamByClient(ctx context.Context, clientID string) (storage.Stream, error) {
	st, err := scanStream(s.read.queryRow(ctx, `SELECT `+streamCols+` FROM ssf_streams WHERE client_id = ?`, clientID))
	if err != nil {
		return storage.Stream{}, s.fail("stream by client", s.noRows(err))
	}
	return st, nil
}

func (s *Store) ListStreams(ctx context.Context) ([]storage.Stream, error) {
	rows, err := s.read.query(ctx, `SELECT `+streamCols+` FROM ssf_streams ORDER BY client_id`)
	sts, err := list(rows, err, scanStream)
	if err != nil {
		return nil, s.fail("list streams", err)
	}
	return sts, nil
}

func (s *Store) UpdateStream(ctx context.Context, st storage.Stream) error {
	err := s.execOne(ctx, `UPDATE ssf_streams SET delivery_method = ?, endpoint_url = ?, authorization_header = ?, audience = ?,
		events_requested = ?, description = ?, status = ?, reason = ?, updated_at = ? WHERE client_id = ?`,
		st.DeliveryMethod, st.EndpointURL, st.AuthorizationHeader, jsonOf(st.Audience), jsonOf(st.EventsRequested),
		st.Description, st.Status, st.Reason, nanos(st.UpdatedAt), st.ClientID)
	if err != nil {
		return s.fail("update stream", err)
	}
	return nil
}

func (s *Store) DeleteStream(ctx context.Context, clientID string) error {
	err := s.tx(ctx, func(tx db) error {
		if err := tx.execOne(ctx, `DELETE FROM ssf_streams WHERE client_id = ?`, clientID); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `DELETE FROM outbox WHERE client_id = ? AND kind IN (?, ?)`,
			clientID, string(storage.OutboxSSFPush), string(storage.OutboxSSFPoll))
		return err
	})
	if err != nil {
		return s.fail("delete stream", err)
	}
	return nil
}

func (s *Store) QueueOutbox(ctx context.Context, msgs []storage.OutboxMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx db) error { return queueOutbox(ctx, tx, msgs) })
	if err != nil {
		return s.fail("queue outbox", s.insertErr(err))
	}
	return nil
}

// queueOutbox writes msgs pending in tx.
func queueOutbox(ctx context.Context, tx db, msgs []storage.OutboxMessage) error {
	for _, m := range msgs {
		if _, err := tx.exec(ctx, `INSERT INTO outbox (`+outboxCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, string(m.Kind), m.ClientID, m.Target, m.Payload, string(storage.OutboxPending), 0, nanos(m.QueuedAt),
			nanos(m.NextAttemptAt), 0, "", "", 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) PollOutbox(ctx context.Context, clientID string, kind storage.OutboxKind, limit int) ([]storage.OutboxMessage, bool, error) {
	rows, err := s.read.query(ctx, `SELECT `+outboxCols+` FROM outbox WHERE client_id = ? AND kind = ? AND status = ?
		ORDER BY queued_at, id LIMIT ?`, clientID, string(kind), string(storage.OutboxPending), limit+1)
	ms, err := list(rows, err, scanOutbox)
	if err != nil {
		return nil, false, s.fail("poll outbox", err)
	}
	if len(ms) > limit {
		return ms[:limit], true, nil
	}
	return ms, false, nil
}

func (s *Store) AckOutbox(ctx context.Context, clientID string, kind storage.OutboxKind, ids []string) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx db) error {
		n = 0
		for _, id := range ids {
			k, err := tx.exec(ctx, `DELETE FROM outbox WHERE id = ? AND client_id = ? AND kind = ?`, id, clientID, string(kind))
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, s.fail("ack outbox", err)
	}
	return n, nil
}

const receiverCols = `issuer, jwks_uri, jwks, audience, created_at`

func scanReceiver(sc Row) (storage.Receiver, error) {
	var r storage.Receiver
	err := sc.Scan(&r.Issuer, &r.JWKSURI, &r.JWKS, &r.Audience, at(&r.CreatedAt))
	return r, err
}

func (s *Store) CreateReceiver(ctx context.Context, r storage.Receiver) error {
	_, err := s.exec(ctx, `INSERT INTO ssf_receivers (`+receiverCols+`) VALUES (?, ?, ?, ?, ?)`,
		r.Issuer, r.JWKSURI, r.JWKS, r.Audience, nanos(r.CreatedAt))
	if err != nil {
		return s.fail("create receiver", s.insertErr(err))
	}
	return nil
}

func (s *Store) ReceiverByIssuer(ctx context.Context, issuer string) (storage.Receiver, error) {
	r, err := scanReceiver(s.read.queryRow(ctx, `SELECT `+receiverCols+` FROM ssf_receivers WHERE issuer = ?`, issuer))
	if err != nil {
		return storage.Receiver{}, s.fail("receiver by issuer", s.noRows(err))
	}
	return r, nil
}

func (s *Store) ListReceivers(ctx context.Context) ([]storage.Receiver, error) {
	rows, err := s.read.query(ctx, `SELECT `+receiverCols+` FROM ssf_receivers ORDER BY issuer`)
	rs, err := list(rows, err, scanReceiver)
	if err != nil {
		return nil, s.fail("list receivers", err)
	}
	return rs, nil
}

func (s *Store) DeleteReceiver(ctx context.Context, issuer string) error {
	if err := s.execOne(ctx, `DELETE FROM ssf_receivers WHERE issuer = ?`, issuer); err != nil {
		return s.fail("delete receiver", err)
	}
	return nil
}
