package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// OpenID Shared Signals Framework 1.0: Keystep transmits CAEP and RISC
// events to the streams its clients register (push, RFC 8935, or poll, RFC
// 8936), and receives them by push from the transmitters an operator
// registered (ssfreceive.go).
//
// A client manages its own stream, one per client, with an access token
// of its client_credentials grant carrying the scope ssf.manage (RFC 6749,
// any client allowed that grant), or with its client ID and secret in HTTP
// Basic (RFC 7617, any client with a secret).
const (
	ssfConfigPath = "/.well-known/ssf-configuration"
	ssfStreamPath = "/ssf/stream"
	ssfStatusPath = "/ssf/status"
	ssfVerifyPath = "/ssf/verify"
	ssfPollPath   = "/ssf/poll"
)

// setType is the JOSE typ of a Security Event Token (RFC 8417 §2.3).
const setType = "secevent+jwt"

// ssfMaxEvents bounds the SETs one poll returns.
const ssfMaxEvents = 100

// ssfTransmitter serves the transmitter's endpoints.
type ssfTransmitter struct {
	s  *Server
	op *opServer
}

func (x *ssfTransmitter) register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+ssfConfigPath, x.configuration)
	mux.HandleFunc(ssfStreamPath, x.stream)
	mux.HandleFunc(ssfStatusPath, x.status)
	mux.HandleFunc("POST "+ssfVerifyPath, x.verify)
	mux.HandleFunc("POST "+ssfPollPath, x.poll)
}

// configuration is the Transmitter Configuration Metadata (SSF 1.0 §7.1).
func (x *ssfTransmitter) configuration(w http.ResponseWriter, r *http.Request) {
	iss := x.s.cfg.Issuer
	writeJSON(w, http.StatusOK, map[string]any{
		"spec_version":               "1_0",
		"issuer":                     iss,
		"jwks_uri":                   iss + "/keys",
		"delivery_methods_supported": []string{storage.SSFPush, storage.SSFPoll},
		"configuration_endpoint":     iss + ssfStreamPath,
		"status_endpoint":            iss + ssfStatusPath,
		"verification_endpoint":      iss + ssfVerifyPath,
		"authorization_schemes":      []map[string]string{{"spec_urn": "urn:ietf:rfc:6749"}, {"spec_urn": "urn:ietf:rfc:7617"}},
		"default_subjects":           "ALL",
	})
}

// ssfError writes an error response of the stream management API.
func ssfError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssf", Basic realm="ssf"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ssfManageScope is the scope of a client_credentials access token that
// manages its client's stream.
const ssfManageScope = "ssf.manage"

// client authenticates the calling client: a bearer access token of its
// own client_credentials grant with the scope ssf.manage (RFC 6750), or its
// ID and secret in HTTP Basic, checked as at the token endpoint.
func (x *ssfTransmitter) client(w http.ResponseWriter, r *http.Request) (storage.Client, bool) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return x.bearerClient(w, r, strings.TrimSpace(tok))
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		ok = err1 == nil && err2 == nil && id != "" && secret != ""
	}
	if !ok {
		ssfError(w, http.StatusUnauthorized, "invalid_client", "authenticate with the client's ID and secret (HTTP Basic)")
		return storage.Client{}, false
	}
	ctx := r.Context()
	if err := x.op.Provider().Storage().AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		ssfError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return storage.Client{}, false
	}
	c, err := x.s.cfg.Store.ClientByID(ctx, id)
	if err != nil {
		ssfError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return storage.Client{}, false
	}
	return c, true
}

// bearerClient is the client whose client_credentials access token tok
// is: live, not sender-constrained (no DPoP proof is checked here), and
// with the scope ssf.manage. A token issued for a user never manages a
// stream.
func (x *ssfTransmitter) bearerClient(w http.ResponseWriter, r *http.Request, tok string) (storage.Client, bool) {
	// As on the OP's own routes: the issuer the token must name, and the
	// request state that carries a JWT's verified claims.
	ctx := context.WithValue(op.ContextWithIssuer(r.Context(), x.s.cfg.Issuer), stateKey{}, &reqState{})
	id, _, ok := x.op.accessTokenID(ctx, tok)
	var g storage.Grant
	if ok {
		at, err := x.op.ops.liveAccessToken(ctx, id)
		ok, g = err == nil, at.Grant
	}
	switch {
	case !ok:
		ssfError(w, http.StatusUnauthorized, "invalid_token", "the access token is not valid")
		return storage.Client{}, false
	case g.Subject != "":
		ssfError(w, http.StatusUnauthorized, "invalid_token", "a client_credentials access token is required")
		return storage.Client{}, false
	case g.JKT != "":
		ssfError(w, http.StatusUnauthorized, "invalid_token", "a DPoP-bound token is not accepted here; authenticate with the client's secret")
		return storage.Client{}, false
	case !slices.Contains(g.Scopes, ssfManageScope):
		ssfError(w, http.StatusForbidden, "insufficient_scope", "the access token lacks the scope "+ssfManageScope)
		return storage.Client{}, false
	}
	c, err := x.s.cfg.Store.ClientByID(ctx, g.ClientID)
	if err != nil {
		ssfError(w, http.StatusUnauthorized, "invalid_token", "the access token's client is gone")
		return storage.Client{}, false
	}
	return c, true
}

// streamConfig is a stream's configuration as SSF 1.0 §8.1.1 shows it.
type streamConfig struct {
	StreamID        string   `json:"stream_id"`
	Iss             string   `json:"iss"`
	Aud             any      `json:"aud"`
	EventsSupported []string `json:"events_supported"`
	EventsRequested []string `json:"events_requested"`
	EventsDelivered []string `json:"events_delivered"`
	Delivery        delivery `json:"delivery"`
	Description     string   `json:"description,omitempty"`
}

// delivery is a stream's delivery method (SSF 1.0 §8.1.1.1).
type delivery struct {
	Method              string `json:"method"`
	EndpointURL         string `json:"endpoint_url,omitempty"`
	AuthorizationHeader string `json:"authorization_header,omitempty"`
}

// streamRequest is what a receiver may set; a member left out is left
// alone by PATCH and reset by PUT. The members the transmitter supplies
// (iss, aud, events_supported, events_delivered) are ignored.
type streamRequest struct {
	StreamID        string    `json:"stream_id"`
	EventsRequested *[]string `json:"events_requested"`
	Delivery        *delivery `json:"delivery"`
	Description     *string   `json:"description"`
}

func (x *ssfTransmitter) config(st storage.Stream) streamConfig {
	var aud any = st.Audience
	if len(st.Audience) == 1 {
		aud = st.Audience[0]
	}
	d := delivery{Method: st.DeliveryMethod, EndpointURL: st.EndpointURL}
	return streamConfig{
		StreamID: st.ID, Iss: x.s.cfg.Issuer, Aud: aud, EventsSupported: storage.SETsSent,
		EventsRequested: orEmpty(st.EventsRequested), EventsDelivered: delivered(st.EventsRequested),
		Delivery: d, Description: st.Description,
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// delivered is events_delivered: the requested events Keystep sends.
func delivered(requested []string) []string {
	out := []string{}
	for _, e := range storage.SETsSent {
		if slices.Contains(requested, e) {
			out = append(out, e)
		}
	}
	return out
}

// apply sets the members req carries on st (all of them when replace,
// defaults for those left out) and checks the result.
func (x *ssfTransmitter) apply(st *storage.Stream, req streamRequest, replace bool) error {
	if req.EventsRequested != nil {
		evs := slices.Clone(*req.EventsRequested)
		slices.Sort(evs)
		st.EventsRequested = slices.Compact(evs)
	} else if replace {
		st.EventsRequested = nil
	}
	if req.Description != nil {
		st.Description = *req.Description
	} else if replace {
		st.Description = ""
	}
	if len(st.Description) > 256 {
		return errors.New("description: at most 256 characters")
	}
	for _, e := range st.EventsRequested {
		if len(e) > 256 {
			return errors.New("events_requested: an event type is too long")
		}
	}
	if len(st.EventsRequested) > 32 {
		return errors.New("events_requested: at most 32 event types")
	}
	d := req.Delivery
	if d == nil {
		if !replace && st.DeliveryMethod != "" {
			return nil
		}
		// SSF 1.0 §8.1.1.1: no delivery means poll.
		d = &delivery{Method: storage.SSFPoll}
	}
	switch d.Method {
	case storage.SSFPush:
		if err := checkTarget(d.EndpointURL); err != nil {
			return fmt.Errorf("delivery.endpoint_url: %w", err)
		}
		if len(d.AuthorizationHeader) > 4096 || strings.ContainsAny(d.AuthorizationHeader, "\r\n") {
			return errors.New("delivery.authorization_header: not a header value")
		}
		st.DeliveryMethod, st.EndpointURL, st.AuthorizationHeader = d.Method, d.EndpointURL, d.AuthorizationHeader
	case storage.SSFPoll:
		// The transmitter supplies the poll URL.
		st.DeliveryMethod, st.EndpointURL, st.AuthorizationHeader = d.Method, x.s.cfg.Issuer+ssfPollPath, ""
	default:
		return fmt.Errorf("delivery.method: %q is not supported (use %s or %s)", d.Method, storage.SSFPush, storage.SSFPoll)
	}
	return nil
}

// decode reads a JSON body into v; false after writing the 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		ssfError(w, http.StatusBadRequest, "invalid_request", "the body must be application/json")
		return false
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		ssfError(w, http.StatusBadRequest, "invalid_request", "the body is not the JSON expected: "+err.Error())
		return false
	}
	return true
}

// ownStream returns the caller's stream when id names it; false after
// writing 404 (another client's stream is as unknown as none).
func (x *ssfTransmitter) ownStream(w http.ResponseWriter, r *http.Request, c storage.Client, id string) (storage.Stream, bool) {
	st, err := x.s.cfg.Store.StreamByClient(r.Context(), c.ID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && st.ID != id {
		ssfError(w, http.StatusNotFound, "not_found", "no such stream")
		return st, false
	}
	if err != nil {
		x.serverError(w, r, err)
		return st, false
	}
	return st, true
}

func (x *ssfTransmitter) serverError(w http.ResponseWriter, r *http.Request, err error) {
	x.s.log.ErrorContext(r.Context(), "ssf", "err", err)
	ssfError(w, http.StatusInternalServerError, "server_error", "the request could not be completed")
}

// audit records a change of c's stream; a failed write fails the change's
// response (it is made already: only reading a stream writes nothing).
func (x *ssfTransmitter) audit(r *http.Request, c storage.Client, op string, st storage.Stream) error {
	return x.s.audit.Record(r.Context(), storage.AuditEvent{Type: storage.EventSSFStream, ClientID: c.ID, Outcome: "success",
		Details: map[string]string{"op": op, "stream_id": st.ID, "method": st.DeliveryMethod, "endpoint_url": st.EndpointURL,
			"events": strings.Join(st.EventsRequested, " "), "status": st.Status}})
}

// stream is the configuration endpoint (SSF 1.0 §8.1.1): create (POST),
// read (GET), update (PATCH), replace (PUT) and delete (DELETE).
func (x *ssfTransmitter) stream(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, PATCH, PUT, DELETE")
		ssfError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	c, ok := x.client(w, r)
	if !ok {
		return
	}
	ctx, store, now := r.Context(), x.s.cfg.Store, x.s.cfg.Now()
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("stream_id")
		if id == "" {
			// Every stream of the caller: at most one.
			out := []streamConfig{}
			st, err := store.StreamByClient(ctx, c.ID)
			if err == nil {
				out = append(out, x.config(st))
			} else if !errors.Is(err, storage.ErrNotFound) {
				x.serverError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		if st, ok := x.ownStream(w, r, c, id); ok {
			writeJSON(w, http.StatusOK, x.config(st))
		}
	case http.MethodPost:
		var req streamRequest
		if !decode(w, r, &req) {
			return
		}
		id, err := factor.NewToken()
		if err != nil {
			x.serverError(w, r, err)
			return
		}
		st := storage.Stream{ID: id[:22], ClientID: c.ID, Audience: []string{c.ID}, Status: storage.StreamEnabled, CreatedAt: now, UpdatedAt: now}
		if err := x.apply(&st, req, true); err != nil {
			ssfError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if err := store.CreateStream(ctx, st); errors.Is(err, storage.ErrAlreadyExists) {
			ssfError(w, http.StatusConflict, "conflict", "this client has a stream already")
			return
		} else if err != nil {
			x.serverError(w, r, err)
			return
		}
		if err := x.audit(r, c, "create", st); err != nil {
			x.serverError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, x.config(st))
	case http.MethodPatch, http.MethodPut:
		var req streamRequest
		if !decode(w, r, &req) {
			return
		}
		if req.StreamID == "" {
			ssfError(w, http.StatusBadRequest, "invalid_request", "stream_id is required")
			return
		}
		st, ok := x.ownStream(w, r, c, req.StreamID)
		if !ok {
			return
		}
		if err := x.apply(&st, req, r.Method == http.MethodPut); err != nil {
			ssfError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		st.UpdatedAt = now
		if err := store.UpdateStream(ctx, st); err != nil {
			x.serverError(w, r, err)
			return
		}
		if err := x.audit(r, c, "update", st); err != nil {
			x.serverError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, x.config(st))
	case http.MethodDelete:
		id := r.URL.Query().Get("stream_id")
		if id == "" {
			ssfError(w, http.StatusBadRequest, "invalid_request", "stream_id is required")
			return
		}
		st, ok := x.ownStream(w, r, c, id)
		if !ok {
			return
		}
		if err := store.DeleteStream(ctx, c.ID); err != nil {
			x.serverError(w, r, err)
			return
		}
		if err := x.audit(r, c, "delete", st); err != nil {
			x.serverError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// streamStatus is the status endpoint's body (SSF 1.0 §8.1.2).
type streamStatus struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

// status reads (GET) or sets (POST) a stream's status.
func (x *ssfTransmitter) status(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		ssfError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	c, ok := x.client(w, r)
	if !ok {
		return
	}
	if r.Method == http.MethodGet {
		id := r.URL.Query().Get("stream_id")
		if id == "" {
			ssfError(w, http.StatusBadRequest, "invalid_request", "stream_id is required")
			return
		}
		if st, ok := x.ownStream(w, r, c, id); ok {
			writeJSON(w, http.StatusOK, streamStatus{StreamID: st.ID, Status: st.Status, Reason: st.Reason})
		}
		return
	}
	var req streamStatus
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.StreamID == "":
		ssfError(w, http.StatusBadRequest, "invalid_request", "stream_id is required")
		return
	case req.Status != storage.StreamEnabled && req.Status != storage.StreamPaused && req.Status != storage.StreamDisabled:
		ssfError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("status %q: use enabled, paused or disabled", req.Status))
		return
	case len(req.Reason) > 256:
		ssfError(w, http.StatusBadRequest, "invalid_request", "reason: at most 256 characters")
		return
	}
	st, ok := x.ownStream(w, r, c, req.StreamID)
	if !ok {
		return
	}
	st.Status, st.Reason, st.UpdatedAt = req.Status, req.Reason, x.s.cfg.Now()
	if err := x.s.cfg.Store.UpdateStream(r.Context(), st); err != nil {
		x.serverError(w, r, err)
		return
	}
	if err := x.audit(r, c, "status", st); err != nil {
		x.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, streamStatus{StreamID: st.ID, Status: st.Status, Reason: st.Reason})
}

// verify queues a verification event to the stream (SSF 1.0 §8.1.4): 204,
// and the SET follows by the stream's delivery method.
func (x *ssfTransmitter) verify(w http.ResponseWriter, r *http.Request) {
	c, ok := x.client(w, r)
	if !ok {
		return
	}
	var req struct {
		StreamID string `json:"stream_id"`
		State    string `json:"state"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.StreamID == "" || len(req.State) > 1024 {
		ssfError(w, http.StatusBadRequest, "invalid_request", "stream_id is required, and state at most 1024 characters")
		return
	}
	st, ok := x.ownStream(w, r, c, req.StreamID)
	if !ok {
		return
	}
	if st.Status == storage.StreamDisabled {
		ssfError(w, http.StatusConflict, "conflict", "the stream is disabled")
		return
	}
	ev := storage.SecurityEvent{Type: storage.SETVerification}
	if req.State != "" {
		ev.Claims = map[string]any{"state": req.State}
	}
	now := x.s.cfg.Now()
	m, err := admin.StreamMessage(st, ev, now)
	if err == nil {
		err = x.s.cfg.Store.QueueOutbox(r.Context(), []storage.OutboxMessage{m})
	}
	if err == nil {
		err = x.audit(r, c, "verify", st)
	}
	if err != nil {
		x.serverError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pollRequest is an RFC 8936 §2.4 poll.
type pollRequest struct {
	Ack               []string                   `json:"ack"`
	SetErrs           map[string]json.RawMessage `json:"setErrs"`
	MaxEvents         *int                       `json:"maxEvents"`
	ReturnImmediately bool                       `json:"returnImmediately"`
}

// poll answers RFC 8936: the SETs acknowledged (ack, or reported as
// errors in setErrs) are deleted, then up to maxEvents held SETs are
// returned, signed now, each until it is acknowledged or expires
// (admin.PollExpiry). Keystep always returns immediately.
func (x *ssfTransmitter) poll(w http.ResponseWriter, r *http.Request) {
	c, ok := x.client(w, r)
	if !ok {
		return
	}
	var req pollRequest
	if !decode(w, r, &req) {
		return
	}
	ctx, store := r.Context(), x.s.cfg.Store
	st, err := store.StreamByClient(ctx, c.ID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && st.DeliveryMethod != storage.SSFPoll {
		ssfError(w, http.StatusBadRequest, "invalid_request", "this client has no poll stream")
		return
	} else if err != nil {
		x.serverError(w, r, err)
		return
	}
	ids := slices.Clone(req.Ack)
	for jti, e := range req.SetErrs {
		x.s.log.WarnContext(ctx, "ssf: receiver reported a SET error", "client_id", c.ID, "jti", jti, "error", string(e))
		ids = append(ids, jti)
	}
	if len(ids) > 1000 {
		ssfError(w, http.StatusBadRequest, "invalid_request", "at most 1000 acknowledgements at once")
		return
	}
	if _, err := store.AckOutbox(ctx, c.ID, storage.OutboxSSFPoll, ids); err != nil {
		x.serverError(w, r, err)
		return
	}
	limit := ssfMaxEvents
	if req.MaxEvents != nil {
		if *req.MaxEvents < 0 {
			ssfError(w, http.StatusBadRequest, "invalid_request", "maxEvents must not be negative")
			return
		}
		limit = min(*req.MaxEvents, ssfMaxEvents)
	}
	resp := struct {
		Sets          map[string]string `json:"sets"`
		MoreAvailable bool              `json:"moreAvailable,omitempty"`
	}{Sets: map[string]string{}}
	if limit > 0 && st.Status == storage.StreamEnabled {
		msgs, more, err := store.PollOutbox(ctx, c.ID, storage.OutboxSSFPoll, limit)
		if err != nil {
			x.serverError(w, r, err)
			return
		}
		resp.MoreAvailable = more
		for _, m := range msgs {
			var ev storage.SecurityEvent
			if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
				x.s.log.ErrorContext(ctx, "ssf: corrupt outbox payload", "id", m.ID, "err", err)
				continue
			}
			tok, err := x.s.outbox.signSET(ctx, st, ev)
			if err != nil {
				x.serverError(w, r, err)
				return
			}
			resp.Sets[ev.JTI] = tok
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// subjectOf is the SSF sub_id of ev (RFC 9493 subject identifiers): the
// stream itself for a verification, a user's session (complex) when it
// names one, else the user (iss_sub).
func (o *outbox) subjectOf(ev storage.SecurityEvent) map[string]any {
	user := map[string]any{"format": "iss_sub", "iss": o.issuer, "sub": ev.UserID}
	switch {
	case ev.Type == storage.SETVerification:
		return map[string]any{"format": "opaque", "id": ev.StreamID}
	case ev.SID != "":
		return map[string]any{"format": "complex", "user": user, "session": map[string]any{"format": "opaque", "id": ev.SID}}
	}
	return user
}

// signSET signs ev as a Security Event Token for stream st (RFC 8417,
// SSF 1.0 §4): typ secevent+jwt, RS256 (which every SSF receiver
// supports), iat the time of signing.
func (o *outbox) signSET(ctx context.Context, st storage.Stream, ev storage.SecurityEvent) (string, error) {
	body := map[string]any{}
	for k, v := range ev.Claims {
		body[k] = v
	}
	if strings.Contains(ev.Type, "/caep/") {
		body["event_timestamp"] = ev.At
	}
	var aud any = st.Audience
	if len(st.Audience) == 1 {
		aud = st.Audience[0]
	}
	claims := map[string]any{
		"iss": o.issuer, "aud": aud, "iat": o.now().Unix(), "jti": ev.JTI,
		"sub_id": o.subjectOf(ev),
		"events": map[string]any{ev.Type: body},
	}
	return o.keys.sign(ctx, "RS256", setType, claims)
}

// errDropped is an SSF message no longer owed: its stream was disabled or
// deleted (and made again) since it was queued. The worker deletes it.
var errDropped = errors.New("stream disabled or gone")

// pushSET sends an OutboxSSFPush message: its SET signed now, to the
// stream's endpoint as registered now. A paused stream holds it (a
// failure to retry, within the delivery bound).
func (o *outbox) pushSET(ctx context.Context, m storage.OutboxMessage) error {
	var ev storage.SecurityEvent
	if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil {
		return permanentError{fmt.Errorf("corrupt payload: %w", err)}
	}
	st, err := o.store.StreamByClient(ctx, m.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return errDropped
	case err != nil:
		return err
	case st.ID != ev.StreamID || st.Status == storage.StreamDisabled || st.DeliveryMethod != storage.SSFPush:
		return errDropped
	case st.Status == storage.StreamPaused:
		return errors.New("stream paused: held")
	}
	tok, err := o.signSET(ctx, st, ev)
	if err != nil {
		return err
	}
	if err := checkTarget(st.EndpointURL); err != nil {
		return permanentError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.EndpointURL, strings.NewReader(tok))
	if err != nil {
		return permanentError{err}
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if st.AuthorizationHeader != "" {
		req.Header.Set("Authorization", st.AuthorizationHeader)
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusAccepted {
		// RFC 8935 §2.3: a refusal says why in err and description.
		var e struct {
			Err         string `json:"err"`
			Description string `json:"description"`
		}
		if json.Unmarshal(body, &e) == nil && e.Err != "" {
			return fmt.Errorf("%s answered %s: %s: %.200s", st.EndpointURL, resp.Status, e.Err, e.Description)
		}
		return fmt.Errorf("%s answered %s", st.EndpointURL, resp.Status)
	}
	return nil
}

// awaitingPoll is the due time of a poll message that has not expired yet:
// only expiry makes it the worker's (a Retry from the console makes it
// due at once, and it waits again from then).
func awaitingPoll(m storage.OutboxMessage, now time.Time) (time.Time, bool) {
	exp := m.QueuedAt.Add(admin.PollExpiry)
	return exp, m.Kind == storage.OutboxSSFPoll && now.Before(exp)
}
