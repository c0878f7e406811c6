package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keystep/keystep/storage"
)

func (s *Store) RecordSignIn(ctx context.Context, in storage.SignIn) error {
	err := s.tx(ctx, func(tx db) error {
		t := nanos(in.At)
		if _, err := tx.exec(ctx, `INSERT INTO known_devices (user_id, device_id, first_seen, last_seen) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen = excluded.last_seen`, in.UserID, in.DeviceID, t, t); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO known_networks (user_id, network, first_seen, last_seen) VALUES (?, ?, ?, ?)
			ON CONFLICT (user_id, network) DO UPDATE SET last_seen = excluded.last_seen`, in.UserID, in.Network, t, t); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO last_signins (user_id, at, ip, network, device_id, has_location, lat, lon, place)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_id) DO UPDATE SET at = excluded.at, ip = excluded.ip, network = excluded.network,
				device_id = excluded.device_id, has_location = excluded.has_location, lat = excluded.lat, lon = excluded.lon, place = excluded.place`,
			in.UserID, t, in.IP, in.Network, in.DeviceID, in.HasLocation, in.Lat, in.Lon, in.Place)
		return err
	})
	if err != nil {
		return s.fail("record sign-in", s.insertErr(err))
	}
	return nil
}

func (s *Store) SignInHistory(ctx context.Context, userID, deviceID, network string) (storage.HistoryFacts, error) {
	var f storage.HistoryFacts
	last := storage.SignIn{UserID: userID}
	err := s.read.queryRow(ctx, `SELECT l.at, l.ip, l.network, l.device_id, l.has_location, l.lat, l.lon, l.place,
			EXISTS (SELECT 1 FROM known_devices d WHERE d.user_id = l.user_id AND d.device_id = ?),
			EXISTS (SELECT 1 FROM known_networks n WHERE n.user_id = l.user_id AND n.network = ?)
		FROM last_signins l WHERE l.user_id = ?`, deviceID, network, userID).
		Scan(at(&last.At), &last.IP, &last.Network, &last.DeviceID, &last.HasLocation, &last.Lat, &last.Lon, &last.Place, &f.DeviceKnown, &f.NetworkKnown)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.HistoryFacts{}, nil
	}
	if err != nil {
		return storage.HistoryFacts{}, s.fail("sign-in history", err)
	}
	f.Any, f.Last = true, last
	return f, nil
}

func (s *Store) ForgetDevice(ctx context.Context, userID, deviceID string) error {
	if _, err := s.exec(ctx, `DELETE FROM known_devices WHERE user_id = ? AND device_id = ?`, userID, deviceID); err != nil {
		return s.fail("forget device", err)
	}
	return nil
}

func (s *Store) KnownSince(ctx context.Context, userID, deviceID, network string) (device, net time.Time, err error) {
	err = s.read.queryRow(ctx, `SELECT
			coalesce((SELECT first_seen FROM known_devices WHERE user_id = ? AND device_id = ?), 0),
			coalesce((SELECT first_seen FROM known_networks WHERE user_id = ? AND network = ?), 0)`,
		userID, deviceID, userID, network).Scan(at(&device), at(&net))
	if err != nil {
		return time.Time{}, time.Time{}, s.fail("known since", err)
	}
	return device, net, nil
}

func (s *Store) FirstSignInAt(ctx context.Context, userID string) (time.Time, error) {
	var first time.Time
	err := s.read.queryRow(ctx, `SELECT coalesce(min(first_seen), 0) FROM known_networks WHERE user_id = ?`, userID).Scan(at(&first))
	if err != nil {
		return time.Time{}, s.fail("first sign-in", err)
	}
	return first, nil
}
