package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// The contract data set: a store holding at least one row of every kind,
// written through the storage API from the suite's fixtures, and a reading
// of all of it back through the same API. A copy of a store (keystep
// migrate) is correct when ReadDataset of the copy equals ReadDataset of
// the original.

// DatasetNow is the clock Fill writes under and ReadDataset reads at: every
// record Fill writes is live then.
var DatasetNow = t0.Add(time.Minute)

// Fill writes the contract data set into s: users, clients, live and
// completed authorization requests, a pushed request, sessions and the
// clients under them, access and refresh tokens, refresh families, a
// revoked row-less access token, factors, TOTP steps, recovery codes,
// consents, one-time tokens, audit events chained with key, throttle
// failures, sign-in history, outbox messages, SSF streams and receivers,
// a password reset and a recovery request,
// and policy versions. Signing keys are the caller's: their private halves
// must be sealed with a master key the caller holds.
func Fill(t testing.TB, s storage.Store, key storage.AuditKey) {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	u := newUser("user-1", "alice")
	u.PasswordCompromised = true
	u.RiskFloor, u.RiskFloorUntil, u.RiskFloorReason = authResult.ACR, t0.Add(time.Hour), "device-compliance-change"
	ok(s.CreateUser(ctx, u))
	bob := newUser("user-2", "bob")
	bob.Admin, bob.Disabled, bob.EmailVerified, bob.EmailVerifiedAt = false, false, false, time.Time{}
	ok(s.CreateUser(ctx, bob))
	ok(s.CreateClient(ctx, newClient("rp")))
	ok(s.CreateClient(ctx, newClient("app")))

	ok(s.CreateAuthRequest(ctx, newAuthRequest("ar-live")))
	ok(s.CreateAuthRequest(ctx, newAuthRequest("ar-done")))
	ok(s.CompleteAuthRequest(ctx, "ar-done", authResult))
	ok(s.SaveAuthCode(ctx, "ar-done", "code-hash-1", t0.Add(2*time.Minute)))
	_, err := s.RecordAuthRequestFailure(ctx, "ar-live")
	ok(err)
	ok(s.CreatePushedRequest(ctx, storage.PushedRequest{ID: "par-1", ClientID: "rp", Params: "scope=openid&state=s", ExpiresAt: t0.Add(time.Hour)}))

	ok(s.CreateSession(ctx, newSession("sid-1", "user-1")))
	ok(s.CreateSession(ctx, newSession("sid-2", "user-2")))

	g := newGrant("g1")
	access := newAccessToken("at-1", g, "")
	ok(s.CreateFamily(ctx, newFamily("fam-1", g), &access))
	_, err = s.RotateFamily(ctx, "fam-1", 0, []string{"openid"}, nil, t0.Add(time.Second))
	ok(err)
	ok(s.MarkFamilyAudited(ctx, "fam-1", 1, t0.Add(2*time.Second)))
	g2 := newGrant("g2")
	g2.ClientID = "app"
	ok(s.CreateRefreshToken(ctx, newRefreshToken("rt-1", "rt-fam", g2), nil))
	ok(s.CreateAccessToken(ctx, newAccessToken("at-2", g2, "rt-1")))
	ok(s.RevokeRowlessAccessToken(ctx, "at-rowless", t0.Add(time.Hour)))

	ok(s.CreateFactor(ctx, newFactor("f-totp", "user-1", storage.FactorTOTP, t0)))
	ok(s.CreateFactor(ctx, newFactor("f-key", "user-1", storage.FactorWebAuthn, t0.Add(time.Second))))
	ok(s.TrustFactor(ctx, "user-1", "f-key", t0.Add(time.Minute)))
	ok(s.UseTOTPStep(ctx, "user-1", 59000000, t0))
	ok(s.ReplaceRecoveryCodes(ctx, "user-1", []string{"rc-1", "rc-2", "rc-3"}, t0))
	_, err = s.UseRecoveryCode(ctx, "user-1", "rc-2", t0.Add(time.Second))
	ok(err)
	ok(s.SaveConsent(ctx, "user-1", "rp", []string{"openid", "email"}, t0))
	ok(s.CreateOneTimeToken(ctx, "dpop", "jti-unspent", t0.Add(time.Hour)))
	ok(s.CreateOneTimeToken(ctx, "email", "link-spent", t0.Add(time.Hour)))
	ok(s.ConsumeOneTimeToken(ctx, "email", "link-spent", t0))

	for _, typ := range []storage.EventType{storage.EventLoginPassword, storage.EventStepupRequested, storage.EventLoginCompleted} {
		_, err := s.AppendAudit(ctx, key, newAuditEvent(typ, "user-1"))
		ok(err)
	}
	_, err = s.RecordFailure(ctx, datasetThrottleKeys, datasetThrottleRules, t0)
	ok(err)
	ok(s.RecordSignIn(ctx, storage.SignIn{UserID: "user-1", At: t0, IP: "192.0.2.7", Network: "192.0.2.0/24", DeviceID: "dev1",
		HasLocation: true, Lat: 51.5, Lon: -0.12, Place: "London"}))

	ok(s.QueueOutbox(ctx, []storage.OutboxMessage{newOutboxMessage("bcl-1", "rp"), newSSFMessage("ssf-1", "app", storage.OutboxSSFPoll, t0)}))
	ok(s.CreateStream(ctx, newStream("app")))
	ok(s.CreateReceiver(ctx, storage.Receiver{Issuer: "https://tx.example", JWKSURI: "https://tx.example/jwks", Audience: "https://keystep.example", CreatedAt: t0}))

	ok(s.CreatePasswordReset(ctx, newReset("reset-1", "user-1"), nil))
	ok(s.CreateRecoveryRequest(ctx, newRecoveryRequest("recovery-1", "user-1", t0)))

	v1, err := s.CreatePolicyVersion(ctx, newPolicyVersion(0, `{"levels":[]}`))
	ok(err)
	_, err = s.CreatePolicyVersion(ctx, newPolicyVersion(v1.Number, `{"levels":[],"scope_min_acr":{}}`))
	ok(err)
}

var (
	datasetThrottleKeys  = []storage.ThrottleKey{{Scope: storage.ScopeAccount, Key: "user-1"}, {Scope: storage.ScopeIP, Key: "192.0.2.7"}}
	datasetThrottleRules = map[string]storage.ThrottleRule{
		storage.ScopeAccount: {Limit: 5, Window: 24 * time.Hour, Base: time.Minute, Max: time.Hour},
		storage.ScopeIP:      {Limit: 50, Window: time.Hour, Base: time.Minute, Max: time.Hour},
	}
)

// ReadDataset reads back, through the storage API at DatasetNow,
// everything Fill writes (and every signing key), keyed by what was read.
// Errors are part of the reading: a record missing reads as its error.
// Some reads spend what they read (a pushed request, a one-time token), so
// a store is read once.
func ReadDataset(t testing.TB, s storage.Store) map[string]any {
	t.Helper()
	ctx := context.Background()
	now := DatasetNow
	out := map[string]any{}
	put := func(name string, v any, err error) {
		if err != nil {
			out[name] = "error: " + errorClass(err)
			return
		}
		out[name] = v
	}
	v, err := s.ListUsers(ctx)
	put("users", v, err)
	c, err := s.ListClients(ctx)
	put("clients", c, err)
	for _, id := range []string{"ar-live", "ar-done"} {
		r, err := s.AuthRequestByID(ctx, id, now)
		put("auth_request "+id, r, err)
	}
	p, err := s.ConsumePushedRequest(ctx, "par-1", "rp", now)
	put("pushed_request", p, err)
	for _, uid := range []string{"user-1", "user-2"} {
		ss, err := s.ListUserSessions(ctx, uid, now)
		put("sessions "+uid, ss, err)
		fs, err := s.ListFactors(ctx, uid)
		put("factors "+uid, fs, err)
		n, err := s.CountRecoveryCodes(ctx, uid)
		put("recovery_codes "+uid, n, err)
	}
	sc, err := s.SessionClients(ctx, "sid-1")
	put("session_clients", sc, err)
	for _, id := range []string{"at-1", "at-2"} {
		a, err := s.AccessTokenByID(ctx, id, now)
		put("access_token "+id, a, err)
	}
	f, err := s.FamilyByID(ctx, "fam-1")
	put("family", f, err)
	rt, err := s.RefreshTokenByID(ctx, "rt-1", now)
	put("refresh_token", rt, err)
	_, err = s.RowlessAccessTokenFamily(ctx, "at-rowless", "fam-1", now)
	put("rowless access token", nil, err)
	k, err := s.ListSigningKeys(ctx)
	put("signing_keys", k, err)
	put("totp step again", nil, s.UseTOTPStep(ctx, "user-1", 59000000, now))
	cs, err := s.ConsentedScopes(ctx, "user-1", "rp")
	put("consent", cs, err)
	put("one-time token spent", nil, s.CreateOneTimeToken(ctx, "email", "link-spent", now.Add(time.Hour)))
	put("one-time token unspent", nil, s.ConsumeOneTimeToken(ctx, "dpop", "jti-unspent", now))
	au, err := s.ListAudit(ctx, storage.AuditFilter{})
	put("audit", au, err)
	th, err := s.CheckThrottle(ctx, datasetThrottleKeys, datasetThrottleRules, now)
	put("throttle", th, err)
	h, err := s.SignInHistory(ctx, "user-1", "dev1", "192.0.2.0/24")
	put("history", h, err)
	ob, err := s.OutboxMessages(ctx, "", "", 100)
	put("outbox", ob, err)
	st, err := s.ListStreams(ctx)
	put("ssf_streams", st, err)
	rc, err := s.ListReceivers(ctx)
	put("ssf_receivers", rc, err)
	pv, err := s.ListPolicyVersions(ctx, 100)
	put("policy_versions", pv, err)
	for _, n := range []int64{1, 2} {
		d, err := s.PolicyVersionByNumber(ctx, n)
		put("policy document "+string(rune('0'+n)), d.Document, err)
	}
	an, err := s.ActivePolicyNumber(ctx)
	put("policy_active", an, err)
	pr, err := s.PasswordReset(ctx, "reset-1", now)
	put("password_resets", pr, err)
	rr, err := s.RecoveryRequestByID(ctx, "recovery-1")
	put("recovery_requests", rr, err)
	return out
}

// errorClass names the storage error err wraps, so that two backends'
// messages need not match word for word.
func errorClass(err error) string {
	for _, e := range []error{storage.ErrNotFound, storage.ErrAlreadyExists, storage.ErrReplayed, storage.ErrExpired, storage.ErrConflict} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}
