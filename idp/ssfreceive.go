package idp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/storage"
)

// ssfReceivePath is where registered transmitters push SETs to Keystep
// (RFC 8935).
const ssfReceivePath = "/ssf/receive"

// Bounds on a received SET's iat: older ones are refused (their jti is
// remembered that long, so a replay is caught however late), and so are
// ones from the future beyond the clock skew.
const (
	setMaxAge = time.Hour
	setSkew   = time.Minute
)

// receivedRiskTTL is how long a received risk (a device no longer
// compliant) raises the user's sign-ins, unless a later signal clears it.
const receivedRiskTTL = 24 * time.Hour

// oneTimeSETJTI is the one-time-token kind of received jti values.
const oneTimeSETJTI = "ssf_jti"

// setAlgs are the signature algorithms accepted on received SETs.
var setAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// ssfReceiver verifies and acts on the SETs pushed to /ssf/receive.
type ssfReceiver struct {
	s     *Server
	admin *admin.Service

	mu   sync.Mutex
	jwks map[string]cachedJWKS // by jwks_uri
}

type cachedJWKS struct {
	set *jose.JSONWebKeySet
	at  time.Time
}

// jwksTTL is how long a fetched JWKS is used before it is fetched again;
// a signature it cannot verify has it fetched again sooner, but not more
// often than jwksRefetch (a stream of forged SETs must not become a stream
// of fetches).
const (
	jwksTTL     = 5 * time.Minute
	jwksRefetch = 30 * time.Second
)

// setRefusal is a refused SET: its RFC 8935 §2.3 error code and why.
type setRefusal struct {
	code, why string
}

func (e setRefusal) Error() string { return e.code + ": " + e.why }

func refuse(code, format string, args ...any) error {
	return setRefusal{code: code, why: fmt.Sprintf(format, args...)}
}

// receivedSET is a verified SET's claims.
type receivedSET struct {
	jwt.Claims
	SubID  json.RawMessage            `json:"sub_id"`
	Events map[string]json.RawMessage `json:"events"`
}

// receive handles an RFC 8935 push: 202 once the SET is verified (and
// acted on), 400 with {"err","description"} when it is refused. Every
// SET, refused or not, is audited.
func (x *ssfReceiver) receive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	iss, set, err := x.verify(r)
	if err != nil {
		var ref setRefusal
		if !errors.As(err, &ref) {
			x.s.log.ErrorContext(ctx, "ssf receive", "err", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		// The issuer is whatever an unverified sender wrote: kept short, so
		// a refusal cannot fill the audit log with its text.
		if aerr := x.s.audit.Record(ctx, storage.AuditEvent{Type: storage.EventSSFRefused, Outcome: "denied", Reason: clipText(ref.Error(), 512),
			Details: map[string]string{"issuer": clipText(iss, 256)}}); aerr != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"err": ref.code, "description": ref.why})
		return
	}
	for typ, body := range set.Events {
		action, userID, err := x.act(ctx, iss, set, typ, body)
		if err != nil {
			x.s.log.ErrorContext(ctx, "ssf receive: action failed", "issuer", iss, "jti", set.ID, "event", typ, "err", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if err := x.s.audit.Record(ctx, storage.AuditEvent{Type: storage.EventSSFReceived, UserID: userID, ActorID: "ssf:" + iss, Outcome: "success",
			Details: map[string]string{"issuer": iss, "jti": set.ID, "event": typ, "action": action}}); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// verify checks a pushed SET: the media type, typ secevent+jwt, a
// registered issuer, its signature with that issuer's keys, aud ours, iat
// neither too old nor in the future, events present, and jti never seen
// from that issuer (spent here, once everything else holds). It returns
// the issuer as far as it could be read, for the audit row.
func (x *ssfReceiver) verify(r *http.Request) (string, receivedSET, error) {
	var set receivedSET
	ctx := r.Context()
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/secevent+jwt" {
		return "", set, refuse("invalid_request", "the body must be application/secevent+jwt")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return "", set, refuse("invalid_request", "unreadable body")
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(string(body)), setAlgs)
	if err != nil {
		return "", set, refuse("invalid_request", "not a signed JWT: %v", err)
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(strings.TrimPrefix(strings.ToLower(typ), "application/"), setType) {
		return "", set, refuse("invalid_request", "typ %q is not %s", typ, setType)
	}
	var unverified struct {
		Iss string `json:"iss"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Iss == "" {
		return "", set, refuse("invalid_issuer", "no iss")
	}
	iss := unverified.Iss
	rcv, err := x.s.cfg.Store.ReceiverByIssuer(ctx, iss)
	if errors.Is(err, storage.ErrNotFound) {
		return iss, set, refuse("invalid_issuer", "issuer %q is not registered", iss)
	} else if err != nil {
		return iss, set, err
	}
	keys, err := x.keys(ctx, rcv, false)
	if err != nil {
		return iss, set, refuse("invalid_key", "the issuer's keys could not be read: %v", err)
	}
	err = tok.Claims(keys, &set)
	if err != nil && rcv.JWKSURI != "" {
		// The transmitter may have rotated its keys since they were
		// fetched: fetch them again (at most every jwksRefetch).
		if keys, err = x.keys(ctx, rcv, true); err != nil {
			return iss, set, refuse("invalid_key", "the issuer's keys could not be read: %v", err)
		}
		err = tok.Claims(keys, &set)
	}
	if err != nil {
		return iss, set, refuse("invalid_key", "signature not valid with the issuer's keys")
	}
	now := x.s.cfg.Now()
	switch {
	case set.Issuer != iss:
		return iss, set, refuse("invalid_issuer", "iss changed")
	case !set.Audience.Contains(rcv.Audience):
		return iss, set, refuse("invalid_audience", "aud %v is not %q", []string(set.Audience), rcv.Audience)
	case set.IssuedAt == nil:
		return iss, set, refuse("invalid_request", "no iat")
	case set.IssuedAt.Time().Before(now.Add(-setMaxAge)):
		return iss, set, refuse("invalid_request", "iat is more than %s old", setMaxAge)
	case set.IssuedAt.Time().After(now.Add(setSkew)):
		return iss, set, refuse("invalid_request", "iat is in the future")
	case set.ID == "" || len(set.ID) > 256:
		return iss, set, refuse("invalid_request", "no jti")
	case len(set.Events) != 1:
		// SSF 1.0: a SET carries exactly one event; one that acted on
		// several and failed half way could not be retried.
		return iss, set, refuse("invalid_request", "a SET must carry exactly one event, not %d", len(set.Events))
	}
	sum := sha256.Sum256([]byte(iss + "\x00" + set.ID))
	err = x.s.cfg.Store.CreateOneTimeToken(ctx, oneTimeSETJTI, base64.RawURLEncoding.EncodeToString(sum[:]), set.IssuedAt.Time().Add(setMaxAge+setSkew))
	if errors.Is(err, storage.ErrAlreadyExists) {
		return iss, set, refuse("invalid_request", "jti %q was received before", set.ID)
	} else if err != nil {
		return iss, set, err
	}
	return iss, set, nil
}

// keys are the receiver's keys: its stored JWKS, or its jwks_uri fetched
// through the outbox's client (the same SSRF rules), kept jwksTTL.
func (x *ssfReceiver) keys(ctx context.Context, rcv storage.Receiver, refetch bool) (*jose.JSONWebKeySet, error) {
	if rcv.JWKS != "" {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(rcv.JWKS), &set); err != nil {
			return nil, err
		}
		return &set, nil
	}
	now := x.s.cfg.Now()
	x.mu.Lock()
	c, ok := x.jwks[rcv.JWKSURI]
	x.mu.Unlock()
	if age := now.Sub(c.at); ok && age >= 0 && (age < jwksTTL && !refetch || age < jwksRefetch) {
		return c.set, nil
	}
	if err := checkTarget(rcv.JWKSURI); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, x.s.outbox.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rcv.JWKSURI, nil)
	if err != nil {
		return nil, err
	}
	resp, err := x.s.outbox.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", rcv.JWKSURI, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<10)).Decode(&set); err != nil {
		return nil, err
	}
	x.mu.Lock()
	if x.jwks == nil {
		x.jwks = map[string]cachedJWKS{}
	}
	x.jwks[rcv.JWKSURI] = cachedJWKS{set: &set, at: now}
	x.mu.Unlock()
	return &set, nil
}

// subjectID is an RFC 9493 subject identifier, as far as Keystep reads
// one.
type subjectID struct {
	Format  string     `json:"format"`
	Iss     string     `json:"iss"`
	Sub     string     `json:"sub"`
	Email   string     `json:"email"`
	ID      string     `json:"id"`
	User    *subjectID `json:"user"`
	Session *subjectID `json:"session"`
}

// subject finds the Keystep user a SET from transmitter iss is about, and
// the session (sid) it names: iss_sub whose sub is a Keystep user ID (iss
// Keystep) or a username (iss the transmitter), opaque whose
// id is a user ID, email, or complex with such a user (and an opaque
// session). ErrNotFound when it names nobody here.
func (x *ssfReceiver) subject(ctx context.Context, iss string, raw json.RawMessage) (storage.User, string, error) {
	var s subjectID
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return storage.User{}, "", storage.ErrNotFound
	}
	sid := ""
	if s.Format == "complex" {
		if s.Session != nil && s.Session.Format == "opaque" {
			sid = s.Session.ID
		}
		if s.User == nil {
			return storage.User{}, "", storage.ErrNotFound
		}
		s = *s.User
	}
	st := x.s.cfg.Store
	switch s.Format {
	case "iss_sub":
		// sub means what its iss says: Keystep's subject (the user ID) when
		// iss is Keystep, the transmitter's (matched to a username) when it
		// is the transmitter; anyone else's subject is no user here.
		switch s.Iss {
		case x.s.cfg.Issuer:
			u, err := st.UserByID(ctx, s.Sub)
			return u, sid, err
		case iss:
			u, err := st.UserByUsername(ctx, s.Sub)
			return u, sid, err
		}
		return storage.User{}, "", storage.ErrNotFound
	case "opaque":
		u, err := st.UserByID(ctx, s.ID)
		return u, sid, err
	case "email":
		us, err := st.ListUsers(ctx)
		if err != nil {
			return storage.User{}, "", err
		}
		// An address two accounts share names neither: acting on the
		// first would protect a decoy and leave the person exposed.
		var found []storage.User
		for _, u := range us {
			if s.Email != "" && strings.EqualFold(u.Email, s.Email) {
				found = append(found, u)
			}
		}
		if len(found) == 1 {
			return found[0], sid, nil
		}
	}
	return storage.User{}, "", storage.ErrNotFound
}

// act does what event typ asks of Keystep and says what it did.
func (x *ssfReceiver) act(ctx context.Context, iss string, set receivedSET, typ string, body json.RawMessage) (string, string, error) {
	var ev struct {
		Subject          json.RawMessage `json:"subject"` // before SSF 1.0, the subject was in the event
		CredentialType   string          `json:"credential_type"`
		CurrentStatus    string          `json:"current_status"`
		ReasonAdmin      json.RawMessage `json:"reason_admin"`
		InitiatingEntity string          `json:"initiating_entity"`
	}
	if json.Unmarshal(body, &ev) != nil {
		return "ignored: the event is not a JSON object", "", nil
	}
	switch typ {
	case storage.SETSessionRevoked, storage.SETCredentialCompromise, storage.SETAccountDisabled, storage.SETDeviceComplianceChange:
	default:
		return "ignored: not an event Keystep acts on", "", nil
	}
	raw := set.SubID
	if len(raw) == 0 {
		raw = ev.Subject
	}
	u, sid, err := x.subject(ctx, iss, raw)
	if errors.Is(err, storage.ErrNotFound) {
		return "ignored: the subject is not a user here", "", nil
	} else if err != nil {
		return "", "", err
	}
	st, now := x.s.cfg.Store, x.s.cfg.Now()
	why := "reported by " + iss
	switch typ {
	case storage.SETSessionRevoked:
		// The sessions end the way every sign-out does: their apps are
		// told (back-channel logout and session-revoked).
		ss, err := st.ListUserSessions(ctx, u.ID, time.Time{})
		if err != nil {
			return "", u.ID, err
		}
		var ends []storage.SessionEnd
		for _, s := range ss {
			if sid == "" || s.SID() == sid {
				ends = append(ends, s.End())
			}
		}
		if sid != "" && len(ends) == 0 {
			ends = append(ends, storage.SessionEnd{UserID: u.ID, SID: sid})
		}
		if err := admin.EndSessions(ctx, st, now, ends...); err != nil {
			return "", u.ID, err
		}
		return "ended " + strconv.Itoa(len(ends)) + " session(s)", u.ID, nil
	case storage.SETCredentialCompromise:
		if ev.CredentialType != "" && ev.CredentialType != "password" {
			return "ignored: credential_type " + ev.CredentialType, u.ID, nil
		}
		u.PasswordCompromised, u.UpdatedAt = true, now
		if err := st.UpdateUser(ctx, u); err != nil {
			return "", u.ID, err
		}
		// Whoever used the password already holds sessions and tokens:
		// they end now, as on a password change (their apps are told).
		n, err := admin.EndAccess(ctx, st, x.s.audit, "ssf:"+iss, u.ID, "", "password "+why)
		if err != nil {
			return "", u.ID, err
		}
		return "password marked compromised; " + strconv.Itoa(n) + " session(s) ended", u.ID, nil
	case storage.SETAccountDisabled:
		if u.Disabled {
			return "already disabled", u.ID, nil
		}
		if _, err := x.admin.SetDisabled(ctx, admin.Actor{ID: "ssf:" + iss, Reason: why}, u.ID, true, now); err != nil {
			return "", u.ID, err
		}
		return "account disabled", u.ID, nil
	case storage.SETDeviceComplianceChange:
		switch ev.CurrentStatus {
		case "not-compliant":
			u.RiskFloor, u.RiskFloorUntil, u.RiskFloorReason = stepup.ACRMultiFactor, now.Add(receivedRiskTTL), "device not compliant, "+why
			u.RiskFloorNewDevices = false // every device, not only new ones
			if err := st.UpdateUser(ctx, u); err != nil {
				return "", u.ID, err
			}
			return "risk floor " + u.RiskFloor + " until " + u.RiskFloorUntil.UTC().Format(time.RFC3339), u.ID, nil
		case "compliant":
			// Only the transmitter that raised the floor lowers it.
			if u.RiskFloor == "" || !strings.HasSuffix(u.RiskFloorReason, why) {
				return "nothing of this issuer's to clear", u.ID, nil
			}
			u.RiskFloor, u.RiskFloorUntil, u.RiskFloorReason, u.RiskFloorNewDevices = "", time.Time{}, "", false
			if err := st.UpdateUser(ctx, u); err != nil {
				return "", u.ID, err
			}
			return "risk floor cleared", u.ID, nil
		}
		return "ignored: current_status " + ev.CurrentStatus, u.ID, nil
	}
	return "ignored", u.ID, nil
}

// clipText cuts s to at most n bytes on a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
