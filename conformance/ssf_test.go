package conformance

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/idp"
	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// setClaims are a SET's claims as a receiver reads them (RFC 8417, SSF 1.0 §4).
type setClaims struct {
	Iss    string                    `json:"iss"`
	Aud    any                       `json:"aud"`
	Iat    int64                     `json:"iat"`
	JTI    string                    `json:"jti"`
	SubID  map[string]any            `json:"sub_id"`
	Events map[string]map[string]any `json:"events"`
}

// verifySET checks a SET the way an SSF receiver must, with go-jose
// against the OP's /keys: typ secevent+jwt, the signature, iss, aud, iat
// and jti.
func verifySET(e *env, raw, aud string) (setClaims, error) {
	var c setClaims
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return c, err
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ != "secevent+jwt" {
		return c, fmt.Errorf("typ %q", typ)
	}
	resp, err := http.Get(e.issuer + "/keys")
	if err != nil {
		return c, err
	}
	var keys jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	if err != nil {
		return c, err
	}
	ks := keys.Key(jws.Signatures[0].Header.KeyID)
	if len(ks) != 1 {
		return c, fmt.Errorf("kid %q not in /keys", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(ks[0])
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, err
	}
	now := e.clock.Now().Unix()
	switch {
	case c.Iss != e.issuer:
		return c, fmt.Errorf("iss %q", c.Iss)
	case fmt.Sprint(c.Aud) != aud:
		return c, fmt.Errorf("aud %v", c.Aud)
	case c.Iat > now+5 || c.Iat < now-60:
		return c, fmt.Errorf("iat %d at %d", c.Iat, now)
	case c.JTI == "":
		return c, fmt.Errorf("no jti")
	case len(c.Events) != 1:
		return c, fmt.Errorf("events %v", c.Events)
	}
	return c, nil
}

// setReceiver is an SSF push receiver (RFC 8935) built in the test.
type setReceiver struct {
	e   *env
	aud string
	srv *httptest.Server

	mu       sync.Mutex
	fail     int // a status to answer instead, while set
	accepted []setClaims
	refused  []string
	auth     []string
}

func newSETReceiver(e *env, aud string) *setReceiver {
	r := &setReceiver{e: e, aud: aud}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		if r.fail != 0 {
			w.WriteHeader(r.fail)
			return
		}
		if req.Header.Get("Content-Type") != "application/secevent+jwt" {
			r.refused = append(r.refused, "content type "+req.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c, err := verifySET(e, string(body), aud)
		if err != nil {
			r.refused = append(r.refused, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.accepted = append(r.accepted, c)
		w.WriteHeader(http.StatusAccepted)
	}))
	e.t.Cleanup(r.srv.Close)
	return r
}

func (r *setReceiver) got() ([]setClaims, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted), slices.Clone(r.refused)
}

// ssfCall calls a stream management endpoint as clientID (with its
// secret), or with an access token when clientID is "Bearer".
func (e *env) ssfCall(method, path, clientID, secret string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.issuer+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case clientID == "Bearer":
		req.Header.Set("Authorization", "Bearer "+secret)
	case clientID != "":
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *env) createStream(clientID, secret string, req map[string]any) map[string]any {
	e.t.Helper()
	status, body := e.ssfCall(http.MethodPost, "/ssf/stream", clientID, secret, req)
	if status != http.StatusCreated {
		e.t.Fatalf("create stream: %d %s", status, body)
	}
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return out
}

// Keystep as an SSF transmitter: the metadata, a push stream registered by
// a client, and the SETs a receiver built here verifies with go-jose
// against /keys: session-revoked when a session is signed out in the
// portal, account-disabled when the account is disabled, and nothing the
// stream did not request.
func TestSSFTransmitterPushesVerifiableSETs(t *testing.T) {
	e := newEnv(t)
	var meta map[string]any
	resp, err := http.Get(e.issuer + "/.well-known/ssf-configuration")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta["issuer"] != e.issuer || meta["jwks_uri"] != e.issuer+"/keys" || meta["configuration_endpoint"] != e.issuer+"/ssf/stream" ||
		meta["status_endpoint"] != e.issuer+"/ssf/status" || meta["verification_endpoint"] != e.issuer+"/ssf/verify" ||
		fmt.Sprint(meta["delivery_methods_supported"]) != "[urn:ietf:rfc:8935 urn:ietf:rfc:8936]" {
		t.Fatalf("ssf-configuration: %v", meta)
	}

	recv := newSETReceiver(e, rpClient)
	cfg := e.createStream(rpClient, e.rpSecret, map[string]any{
		"delivery":         map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": recv.srv.URL + "/events", "authorization_header": "Bearer rx"},
		"events_requested": []string{storage.SETSessionRevoked, storage.SETAccountDisabled, "https://example.com/unknown"},
	})
	if cfg["iss"] != e.issuer || cfg["aud"] != rpClient || cfg["stream_id"] == "" ||
		fmt.Sprint(cfg["events_delivered"]) != fmt.Sprint([]string{storage.SETSessionRevoked, storage.SETAccountDisabled}) {
		t.Fatalf("stream: %v", cfg)
	}

	r := e.rp(rpClient, e.rpSecret)
	phone := e.browser()
	tok := r.login(phone, nil)
	e.clock.Advance(time.Second)
	laptop := e.browser()
	laptop.portalLogin()
	e.deliver()
	if acc, _ := recv.got(); len(acc) != 0 {
		t.Fatalf("SETs before anything happened: %v", acc)
	}
	p := laptop.post("/account/sessions/signout", url.Values{"sid": {tok.claims.SID}})
	if !strings.Contains(p.body, "That session was signed out") {
		t.Fatalf("sign out: %d", p.status)
	}
	e.deliver()
	acc, refused := recv.got()
	if len(refused) != 0 || len(acc) != 1 {
		t.Fatalf("accepted %v, refused %v; want one session-revoked", acc, refused)
	}
	ev, ok := acc[0].Events[storage.SETSessionRevoked]
	sub := acc[0].SubID
	user, _ := sub["user"].(map[string]any)
	sess, _ := sub["session"].(map[string]any)
	if !ok || ev["event_timestamp"] == nil || sub["format"] != "complex" || user["format"] != "iss_sub" || user["iss"] != e.issuer ||
		user["sub"] != "u-alice" || sess["format"] != "opaque" || sess["id"] != tok.claims.SID {
		t.Fatalf("session-revoked SET: events %v sub_id %v", acc[0].Events, sub)
	}
	if recv.auth[0] != "Bearer rx" {
		t.Errorf("Authorization %q, want the stream's authorization_header", recv.auth[0])
	}

	// Disabling ends the laptop's session too (session-revoked) and
	// says account-disabled; enabling again is not requested.
	if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "cli", Reason: "left"}, "u-alice", true, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "cli", Reason: "back"}, "u-alice", false, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	acc, refused = recv.got()
	var types []string
	for _, c := range acc[1:] {
		for typ := range c.Events {
			types = append(types, typ)
		}
	}
	slices.Sort(types)
	if len(refused) != 0 || !slices.Equal(types, []string{storage.SETSessionRevoked, storage.SETAccountDisabled}) {
		t.Fatalf("after disable and enable: %v, refused %v", types, refused)
	}
	for _, c := range acc[1:] {
		if _, ok := c.Events[storage.SETAccountDisabled]; ok && (c.SubID["format"] != "iss_sub" || c.SubID["sub"] != "u-alice") {
			t.Errorf("account-disabled sub_id %v", c.SubID)
		}
	}
	if jtis := []string{acc[0].JTI, acc[1].JTI, acc[2].JTI}; jtis[0] == jtis[1] || jtis[1] == jtis[2] || jtis[0] == jtis[2] {
		t.Errorf("jti repeated: %v", jtis)
	}
}

// A paused stream holds its events until it is enabled again; a disabled
// one drops them. A credential change (a factor removed) is sent when
// requested.
func TestSSFStreamStatusHoldsAndDrops(t *testing.T) {
	e := newEnv(t)
	recv := newSETReceiver(e, rpClient)
	cfg := e.createStream(rpClient, e.rpSecret, map[string]any{
		"delivery":         map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": recv.srv.URL},
		"events_requested": []string{storage.SETCredentialChange, storage.SETAccountDisabled, storage.SETAccountEnabled},
	})
	id := cfg["stream_id"].(string)
	setStatus := func(status string) {
		t.Helper()
		code, body := e.ssfCall(http.MethodPost, "/ssf/status", rpClient, e.rpSecret, map[string]any{"stream_id": id, "status": status, "reason": "test"})
		if code != http.StatusOK || !strings.Contains(string(body), `"status":"`+status+`"`) {
			t.Fatalf("status %s: %d %s", status, code, body)
		}
	}
	setStatus("paused")
	if err := admin.Signal(t.Context(), e.store, e.clock.Now(), admin.CredentialChange("u-alice", "app", admin.ChangeDelete, "Phone")); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	if acc, _ := recv.got(); len(acc) != 0 {
		t.Fatalf("a paused stream was sent %v", acc)
	}
	if code, body := e.ssfCall(http.MethodGet, "/ssf/status?stream_id="+id, rpClient, e.rpSecret, nil); code != http.StatusOK || !strings.Contains(string(body), `"paused"`) {
		t.Fatalf("status: %d %s", code, body)
	}
	setStatus("enabled")
	e.clock.Advance(time.Hour) // past the retry's backoff
	e.deliver()
	acc, _ := recv.got()
	if len(acc) != 1 || acc[0].Events[storage.SETCredentialChange]["change_type"] != "delete" || acc[0].Events[storage.SETCredentialChange]["credential_type"] != "app" {
		t.Fatalf("after enabling: %v", acc)
	}
	setStatus("disabled")
	if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "cli", Reason: "x"}, "u-alice", true, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	if acc, _ := recv.got(); len(acc) != 1 {
		t.Fatalf("a disabled stream was sent %v", acc[1:])
	}
	if left, _ := e.store.OutboxMessages(t.Context(), rpClient, "", 10); len(left) != 0 {
		t.Errorf("%d messages left for a disabled stream", len(left))
	}
}

// RFC 8936 poll: a verification event is held until acknowledged;
// maxEvents 0 only acknowledges; acknowledged SETs are not returned again.
func TestSSFPollRoundTrip(t *testing.T) {
	e := newEnv(t)
	cfg := e.createStream(rpClient, e.rpSecret, map[string]any{
		"delivery":         map[string]any{"method": "urn:ietf:rfc:8936"},
		"events_requested": []string{storage.SETCredentialChange},
	})
	id := cfg["stream_id"].(string)
	if d, _ := cfg["delivery"].(map[string]any); d["endpoint_url"] != e.issuer+"/ssf/poll" {
		t.Fatalf("poll delivery %v", cfg["delivery"])
	}
	if code, body := e.ssfCall(http.MethodPost, "/ssf/verify", rpClient, e.rpSecret, map[string]any{"stream_id": id, "state": "st-1"}); code != http.StatusNoContent {
		t.Fatalf("verify: %d %s", code, body)
	}
	e.clock.Advance(time.Second)
	if err := admin.Signal(t.Context(), e.store, e.clock.Now(), admin.CredentialChange("u-alice", "password", admin.ChangeUpdate, "")); err != nil {
		t.Fatal(err)
	}
	poll := func(req map[string]any) (map[string]string, bool) {
		t.Helper()
		code, body := e.ssfCall(http.MethodPost, "/ssf/poll", rpClient, e.rpSecret, req)
		if code != http.StatusOK {
			t.Fatalf("poll: %d %s", code, body)
		}
		var out struct {
			Sets map[string]string `json:"sets"`
			More bool              `json:"moreAvailable"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Sets, out.More
	}
	sets, more := poll(map[string]any{"maxEvents": 1, "returnImmediately": true})
	if len(sets) != 1 || !more {
		t.Fatalf("first poll: %d SETs, more %v", len(sets), more)
	}
	var first string
	for jti, raw := range sets {
		c, err := verifySET(e, raw, rpClient)
		if err != nil {
			t.Fatal(err)
		}
		if c.JTI != jti || c.Events[storage.SETVerification]["state"] != "st-1" || c.SubID["format"] != "opaque" || c.SubID["id"] != id {
			t.Fatalf("verification SET: %+v", c)
		}
		first = jti
	}
	// Not acknowledged: returned again, with the other.
	sets, more = poll(map[string]any{"maxEvents": 10, "returnImmediately": true})
	if len(sets) != 2 || more || sets[first] == "" {
		t.Fatalf("second poll: %v more %v", sets, more)
	}
	var all []string
	for jti := range sets {
		all = append(all, jti)
	}
	// Acknowledge without asking for more.
	if sets, _ = poll(map[string]any{"ack": []string{first}, "maxEvents": 0}); len(sets) != 0 {
		t.Fatalf("maxEvents 0 returned %d", len(sets))
	}
	sets, _ = poll(map[string]any{"returnImmediately": true})
	if len(sets) != 1 || sets[first] != "" {
		t.Fatalf("after ack: %v", sets)
	}
	for jti, raw := range sets {
		c, err := verifySET(e, raw, rpClient)
		if err != nil || c.Events[storage.SETCredentialChange]["credential_type"] != "password" || c.SubID["sub"] != "u-alice" {
			t.Fatalf("credential-change SET %s: %+v %v", jti, c, err)
		}
	}
	poll(map[string]any{"ack": all, "maxEvents": 0})
	if sets, _ = poll(map[string]any{}); len(sets) != 0 {
		t.Fatalf("after the last ack: %v", sets)
	}
	// Another client cannot acknowledge or read them.
	if code, _ := e.ssfCall(http.MethodPost, "/ssf/poll", "other", "s3cret-other", map[string]any{}); code != http.StatusUnauthorized {
		t.Errorf("an unknown client polled: %d", code)
	}
}

// Stream management refuses what it must, with the right status, and
// changes nothing.
func TestSSFStreamManagementErrors(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "other", Name: "Other", SecretHash: factor.HashToken("s3cret-other"), RedirectURIs: []string{rpRedirect},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256"})
	push := map[string]any{"delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": "https://rp.example/ssf"}}
	for _, tc := range []struct {
		name, method, path, client, secret string
		body                               any
		want                               int
	}{
		{"no client authentication", "POST", "/ssf/stream", "", "", push, 401},
		{"a wrong secret", "POST", "/ssf/stream", rpClient, "wrong", push, 401},
		{"a public client", "POST", "/ssf/stream", publicClient, "x", push, 401},
		{"bad JSON", "POST", "/ssf/stream", rpClient, e.rpSecret, `{"delivery":`, 400},
		{"an unknown delivery method", "POST", "/ssf/stream", rpClient, e.rpSecret, map[string]any{"delivery": map[string]any{"method": "urn:example:smoke"}}, 400},
		{"push to plain http", "POST", "/ssf/stream", rpClient, e.rpSecret, map[string]any{"delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": "http://rp.example/ssf"}}, 400},
		{"push without an endpoint", "POST", "/ssf/stream", rpClient, e.rpSecret, map[string]any{"delivery": map[string]any{"method": "urn:ietf:rfc:8935"}}, 400},
		{"a method the endpoint lacks", "HEAD", "/ssf/stream", rpClient, e.rpSecret, nil, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.ssfCall(tc.method, tc.path, tc.client, tc.secret, tc.body); code != tc.want {
				t.Fatalf("%d %s, want %d", code, body, tc.want)
			}
			if sts, _ := e.store.ListStreams(t.Context()); len(sts) != 0 {
				t.Fatalf("a stream was made: %v", sts)
			}
		})
	}
	cfg := e.createStream(rpClient, e.rpSecret, push)
	id := cfg["stream_id"].(string)
	for _, tc := range []struct {
		name, method, path, client, secret string
		body                               any
		want                               int
	}{
		{"a second stream", "POST", "/ssf/stream", rpClient, e.rpSecret, push, 409},
		{"another client reads it", "GET", "/ssf/stream?stream_id=" + id, "other", "s3cret-other", nil, 404},
		{"another client changes it", "PATCH", "/ssf/stream", "other", "s3cret-other", map[string]any{"stream_id": id, "events_requested": []string{}}, 404},
		{"another client deletes it", "DELETE", "/ssf/stream?stream_id=" + id, "other", "s3cret-other", nil, 404},
		{"another client pauses it", "POST", "/ssf/status", "other", "s3cret-other", map[string]any{"stream_id": id, "status": "paused"}, 404},
		{"another client asks to verify it", "POST", "/ssf/verify", "other", "s3cret-other", map[string]any{"stream_id": id}, 404},
		{"an unknown status", "POST", "/ssf/status", rpClient, e.rpSecret, map[string]any{"stream_id": id, "status": "asleep"}, 400},
		{"a status without stream_id", "POST", "/ssf/status", rpClient, e.rpSecret, map[string]any{"status": "paused"}, 400},
		{"an update without stream_id", "PATCH", "/ssf/stream", rpClient, e.rpSecret, map[string]any{"description": "x"}, 400},
		{"an update to a bad endpoint", "PATCH", "/ssf/stream", rpClient, e.rpSecret, map[string]any{"stream_id": id, "delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": "ftp://x"}}, 400},
		{"an unknown stream", "GET", "/ssf/stream?stream_id=nope", rpClient, e.rpSecret, nil, 404},
		{"a poll of a push stream", "POST", "/ssf/poll", rpClient, e.rpSecret, map[string]any{}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.ssfCall(tc.method, tc.path, tc.client, tc.secret, tc.body); code != tc.want {
				t.Fatalf("%d %s, want %d", code, body, tc.want)
			}
			st, err := e.store.StreamByClient(t.Context(), rpClient)
			if err != nil || st.ID != id || st.Status != storage.StreamEnabled || st.EndpointURL != "https://rp.example/ssf" || st.Description != "" {
				t.Fatalf("the stream changed: %+v %v", st, err)
			}
		})
	}
	// The owner reads, updates and deletes it.
	if code, body := e.ssfCall("GET", "/ssf/stream", rpClient, e.rpSecret, nil); code != 200 || !strings.Contains(string(body), id) {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body := e.ssfCall("PATCH", "/ssf/stream", rpClient, e.rpSecret, map[string]any{"stream_id": id, "events_requested": []string{storage.SETAccountDisabled}, "description": "payroll"})
	if code != 200 || !strings.Contains(string(body), `"events_delivered":["`+storage.SETAccountDisabled+`"]`) || !strings.Contains(string(body), "https://rp.example/ssf") {
		t.Fatalf("patch: %d %s", code, body)
	}
	if code, body := e.ssfCall("DELETE", "/ssf/stream?stream_id="+id, rpClient, e.rpSecret, nil); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := e.ssfCall("GET", "/ssf/stream?stream_id="+id, rpClient, e.rpSecret, nil); code != 404 {
		t.Fatalf("after delete: %d", code)
	}
	if ev := e.lastEvent(storage.EventSSFStream); ev.ClientID != rpClient || ev.Details["op"] != "delete" {
		t.Errorf("audit: %+v", ev)
	}
}

// transmitter is another party's SSF transmitter, built in the test: it
// signs SETs with its own key and pushes them to Keystep.
type transmitter struct {
	e    *env
	iss  string
	mu   sync.Mutex
	key  *ecdsa.PrivateKey
	jwks string
}

func newTransmitter(e *env, iss string) *transmitter {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "tx1", Algorithm: "ES256", Use: "sig"}}})
	return &transmitter{e: e, iss: iss, key: k, jwks: string(jwks)}
}

// register makes it a transmitter Keystep receives from.
func (x *transmitter) register() {
	x.e.t.Helper()
	if err := x.e.store.CreateReceiver(context.Background(), storage.Receiver{Issuer: x.iss, JWKS: x.jwks, Audience: x.e.issuer, CreatedAt: x.e.clock.Now()}); err != nil {
		x.e.t.Fatal(err)
	}
}

// registerByURI makes it a transmitter Keystep receives from, its keys
// published at a jwks_uri (which Keystep fetches) rather than stored.
// It returns how many times they were fetched.
func (x *transmitter) registerByURI() *atomic.Int32 {
	x.e.t.Helper()
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		x.mu.Lock()
		defer x.mu.Unlock()
		_, _ = io.WriteString(w, x.jwks)
	}))
	x.e.t.Cleanup(srv.Close)
	if err := x.e.store.CreateReceiver(context.Background(), storage.Receiver{Issuer: x.iss, JWKSURI: srv.URL + "/jwks", Audience: x.e.issuer, CreatedAt: x.e.clock.Now()}); err != nil {
		x.e.t.Fatal(err)
	}
	return &fetches
}

// rotate replaces its signing key (and the JWKS it publishes).
func (x *transmitter) rotate() {
	y := newTransmitter(x.e, x.iss)
	x.mu.Lock()
	x.key, x.jwks = y.key, y.jwks
	x.mu.Unlock()
}

// set signs a SET; claims override the defaults.
func (x *transmitter) set(typ string, event map[string]any, subID map[string]any, claims map[string]any) string {
	x.e.t.Helper()
	c := map[string]any{"iss": x.iss, "aud": x.e.issuer, "iat": x.e.clock.Now().Unix(), "jti": randomString(),
		"sub_id": subID, "events": map[string]any{typ: event}}
	for k, v := range claims {
		c[k] = v
	}
	payload, _ := json.Marshal(c)
	x.mu.Lock()
	key := x.key
	x.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "tx1"}},
		(&jose.SignerOptions{}).WithType("secevent+jwt"))
	if err != nil {
		x.e.t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		x.e.t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

// push POSTs a SET to Keystep (RFC 8935) and returns the status and err.
func (x *transmitter) push(set string) (int, string) {
	x.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, x.e.issuer+"/ssf/receive", strings.NewReader(set))
	req.Header.Set("Content-Type", "application/secevent+jwt")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		x.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Err string `json:"err"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Err
}

func issSub(iss, sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": iss, "sub": sub}
}

// A transmitter reports alice's password compromised: her next sign-in
// with it does not reach the app; she proves her authenticator app and is
// led to change the password, and then the old one is refused and the new
// one works. Without a second factor the sign-in is refused outright.
func TestSSFCredentialCompromiseRefusesThePassword(t *testing.T) {
	e := newEnv(t)
	totp := e.enrollTOTP("u-alice")
	e.addUser("bob", "bob's long password")
	tx := newTransmitter(e, "https://fraud.example")
	tx.register()
	// A transmitter names people by its own subject, matched to a username;
	// Keystep's own subject (the user ID) comes with Keystep as iss.
	for _, sub := range []map[string]any{issSub(tx.iss, "alice"), issSub(e.issuer, "u-bob")} {
		who := sub["sub"]
		if code, errc := tx.push(tx.set(storage.SETCredentialCompromise, map[string]any{"credential_type": "password"}, sub, nil)); code != http.StatusAccepted {
			t.Fatalf("push for %s: %d %s", who, code, errc)
		}
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); !u.PasswordCompromised {
		t.Fatal("the password is not marked compromised")
	}
	if ev := e.lastEvent(storage.EventSSFReceived); ev.Details["issuer"] != tx.iss || ev.Details["event"] != storage.SETCredentialCompromise {
		t.Errorf("audit: %+v", ev)
	}

	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	p := b.signIn(b.get(a.url), alice, alicePass)
	if p.redirect != nil || !p.has("/login/otp") {
		t.Fatalf("the compromised password alone was enough: %+v %d\n%.1500s", p.redirect, p.status, p.body)
	}
	p = b.submitCode(p, "/login/otp", e.totp(totp))
	if p.redirect != nil || !strings.Contains(p.body, "reported as exposed") || !p.has("/account/password") {
		t.Fatalf("after the second factor, not the password change: %+v %d %s\n%.2000s", p.redirect, p.status, p.url, p.body)
	}
	if ev := e.lastEvent(storage.EventLoginFailed); ev.ClientID != rpClient || !strings.Contains(ev.Reason, "compromised") {
		t.Errorf("login.failed: %+v", ev)
	}
	p = b.post("/account/password", url.Values{"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
	if !strings.Contains(p.body, "Your password was changed") {
		t.Fatalf("change: %d\n%.2000s", p.status, p.body)
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); u.PasswordCompromised {
		t.Fatal("still marked compromised after the change")
	}
	// The old password is wrong now; the new one signs in to the app.
	b2 := e.browser()
	a = r.authURL(nil)
	if p := b2.signIn(b2.get(a.url), alice, alicePass); p.status != http.StatusUnauthorized || !strings.Contains(p.body, "match. Check them") {
		t.Fatalf("the old password: %d %+v", p.status, p.redirect)
	}
	p = b2.signIn(b2.get(a.url), alice, "a brand new passphrase")
	if p.has("/login/consent") {
		p = b2.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if r.code(p, a) == "" {
		t.Fatal("no code with the new password")
	}

	// Bob has no second factor: the app gets access_denied.
	b3 := e.browser()
	a = r.authURL(nil)
	p = b3.signIn(b3.get(a.url), "bob", "bob's long password")
	if p.redirect == nil || p.redirect.Query().Get("error") != "access_denied" {
		t.Fatalf("bob: %+v %d\n%.1500s", p.redirect, p.status, p.body)
	}
}

// A received session-revoked ends the subject's sessions the way every
// sign-out does: the sessions are gone, their refresh tokens refused, and a
// back-channel logout is queued for the app and delivered.
func TestSSFReceivedSessionRevoked(t *testing.T) {
	e := newEnv(t)
	r, logout := e.addBackchannelRP("app-a", "RS256")
	tok := r.login(e.browser(), nil)
	tx := newTransmitter(e, "https://idp.partner.example")
	tx.register()
	if code, errc := tx.push(tx.set(storage.SETSessionRevoked, map[string]any{"event_timestamp": e.clock.Now().Unix()}, issSub(e.issuer, "u-alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, errc)
	}
	if ss, _ := e.store.ListUserSessions(t.Context(), "u-alice", e.clock.Now()); len(ss) != 0 {
		t.Fatalf("%d sessions left", len(ss))
	}
	if ms, _ := e.store.OutboxMessages(t.Context(), "app-a", "", 10); len(ms) != 1 || ms[0].Kind != storage.OutboxBackchannelLogout {
		t.Fatalf("queued: %+v", ms)
	}
	e.deliver()
	if acc, refused, _ := logout.got(); len(acc) != 1 || len(refused) != 0 || acc[0].SID != tok.claims.SID {
		t.Fatalf("logout: %+v %v", acc, refused)
	}
	if _, err := r.refresh(tok.token.RefreshToken); err == nil {
		t.Error("the refresh token still works")
	}
	if ev := e.lastEvent(storage.EventSSFReceived); ev.UserID != "u-alice" || ev.Details["action"] != "ended 1 session(s)" {
		t.Errorf("audit: %+v", ev)
	}
}

// A received account-disabled disables the user as `keystep users disable`
// does; a device no longer compliant raises the next sign-in to a second
// factor. The transmitter's keys are fetched from its jwks_uri, again when
// it rotates them.
func TestSSFReceivedDisableAndDeviceCompliance(t *testing.T) {
	e := newEnv(t)
	totp := e.enrollTOTP("u-alice")
	tx := newTransmitter(e, "https://edr.example")
	fetches := tx.registerByURI()
	if code, _ := tx.push(tx.set(storage.SETDeviceComplianceChange, map[string]any{"previous_status": "compliant", "current_status": "not-compliant"}, issSub(tx.iss, "alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	a := r.authURL(nil)
	p := b.signIn(b.get(a.url), alice, alicePass)
	if !p.has("/login/otp") {
		t.Fatalf("no step-up after a device was reported not compliant: %+v\n%.1500s", p.redirect, p.body)
	}
	p = b.submitCode(p, "/login/otp", e.totp(totp))
	if p.has("/login/consent") {
		p = b.post("/login/consent", url.Values{"id": {p.hidden("id")}, "decision": {"allow"}})
	}
	if tok := r.mustExchange(r.code(p, a), a); tok.claims.ACR != acrMFA {
		t.Errorf("acr %s", tok.claims.ACR)
	}
	// Another transmitter cannot lower the floor this one raised; this one can.
	other := newTransmitter(e, "https://other.example")
	other.register()
	if code, _ := other.push(other.set(storage.SETDeviceComplianceChange, map[string]any{"current_status": "compliant"}, issSub(other.iss, "alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); u.RiskFloor == "" {
		t.Fatal("another transmitter cleared the floor")
	}
	if code, _ := tx.push(tx.set(storage.SETDeviceComplianceChange, map[string]any{"current_status": "compliant"}, issSub(tx.iss, "alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); u.RiskFloor != "" {
		t.Fatal("the floor stayed after its transmitter said compliant")
	}
	// The transmitter rotates its key: a SET signed with the new one has
	// the keys fetched again, though not more than every 30 s.
	tx.rotate()
	if code, errc := tx.push(tx.set(storage.SETAccountDisabled, map[string]any{}, issSub(tx.iss, "alice"), nil)); code != http.StatusBadRequest || errc != "invalid_key" || fetches.Load() != 1 {
		t.Fatalf("within 30 s of the fetch: %d %s, %d fetches", code, errc, fetches.Load())
	}
	e.clock.Advance(time.Minute)
	if code, errc := tx.push(tx.set(storage.SETAccountDisabled, map[string]any{}, issSub(tx.iss, "alice"), nil)); code != http.StatusAccepted || fetches.Load() != 2 {
		t.Fatalf("push with the new key: %d %s, %d fetches", code, errc, fetches.Load())
	}
	if u, _ := e.store.UserByID(t.Context(), "u-alice"); !u.Disabled {
		t.Fatal("not disabled")
	}
	if ev := e.lastEvent(storage.EventAdminUserDisable); ev.ActorID != "ssf:"+tx.iss {
		t.Errorf("disable audited as %+v", ev)
	}
}

// Refused SETs: each is answered with its RFC 8935 error, audited, and
// acts on nothing.
func TestSSFReceiverRefusals(t *testing.T) {
	e := newEnv(t)
	tx := newTransmitter(e, "https://fraud.example")
	tx.register()
	stranger := newTransmitter(e, "https://stranger.example")
	forger := newTransmitter(e, tx.iss) // the registered issuer, another key
	compromise := func(x *transmitter, claims map[string]any) string {
		return x.set(storage.SETCredentialCompromise, map[string]any{}, issSub(x.iss, "alice"), claims)
	}
	good := compromise(tx, map[string]any{"jti": "once"})
	now := e.clock.Now()
	for _, tc := range []struct {
		name, set, want string
	}{
		{"an unknown issuer", compromise(stranger, nil), "invalid_issuer"},
		{"a bad signature", compromise(forger, nil), "invalid_key"},
		{"another audience", compromise(tx, map[string]any{"aud": "https://someone.else"}), "invalid_audience"},
		{"an old iat", compromise(tx, map[string]any{"iat": now.Add(-2 * time.Hour).Unix()}), "invalid_request"},
		{"an iat in the future", compromise(tx, map[string]any{"iat": now.Add(time.Hour).Unix()}), "invalid_request"},
		{"no jti", compromise(tx, map[string]any{"jti": ""}), "invalid_request"},
		{"not a JWT", "hello", "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, errc := tx.push(tc.set)
			if code != http.StatusBadRequest || errc != tc.want {
				t.Fatalf("%d %q, want 400 %q", code, errc, tc.want)
			}
			if u, _ := e.store.UserByID(t.Context(), "u-alice"); u.PasswordCompromised {
				t.Fatal("acted on a refused SET")
			}
			if ev := e.lastEvent(storage.EventSSFRefused); !strings.HasPrefix(ev.Reason, tc.want) {
				t.Errorf("audit: %+v", ev)
			}
		})
	}
	if code, errc := tx.push(good); code != http.StatusAccepted {
		t.Fatalf("the good SET: %d %s", code, errc)
	}
	// The same jti again, even re-signed, is a replay.
	if code, errc := tx.push(compromise(tx, map[string]any{"jti": "once"})); code != http.StatusBadRequest || errc != "invalid_request" {
		t.Fatalf("replay: %d %s", code, errc)
	}
	if ev := e.lastEvent(storage.EventSSFRefused); !strings.Contains(ev.Reason, "received before") {
		t.Errorf("replay audit: %+v", ev)
	}
	if n := len(e.adminEvents(storage.EventSSFReceived)); n != 1 {
		t.Errorf("%d received events, want 1", n)
	}
	// The wrong media type.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/ssf/receive", strings.NewReader(good))
	req.Header.Set("Content-Type", "application/jwt")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("application/jwt: %d", resp.StatusCode)
	}
}

// The console's delivery page shows each stream's delivery (given up
// after the bound, with its last error) with the Retry /admin/outbox
// offers, and the registered transmitters with what they last sent; an
// admin registers and removes a transmitter there.
func TestSSFDeliveryStatusInTheConsole(t *testing.T) {
	e, secret := adminEnv(t, func(c *idp.Config) {
		c.Outbox = idp.OutboxConfig{MinBackoff: time.Minute, MaxBackoff: 10 * time.Minute, GiveUpAfter: 30 * time.Minute}
	})
	recv := newSETReceiver(e, rpClient)
	recv.fail = http.StatusServiceUnavailable
	e.createStream(rpClient, e.rpSecret, map[string]any{
		"delivery":         map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": recv.srv.URL},
		"events_requested": []string{storage.SETAccountDisabled},
	})
	if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "cli", Reason: "x"}, "u-alice", true, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		e.deliver()
		e.clock.Advance(10 * time.Minute)
	}
	failed, err := e.store.OutboxMessages(t.Context(), rpClient, storage.OutboxFailed, 10)
	if err != nil || len(failed) != 1 || failed[0].Kind != storage.OutboxSSFPush {
		t.Fatalf("failed: %+v %v", failed, err)
	}
	console := e.browser()
	console.adminLogin(secret)
	tx := newTransmitter(e, "https://edr.example")
	p := console.post("/admin/outbox/receivers", url.Values{"issuer": {tx.iss}, "jwks": {tx.jwks}, "audience": {e.issuer}})
	if !strings.Contains(p.body, "The transmitter was registered") {
		t.Fatalf("register: %d\n%.2000s", p.status, p.body)
	}
	if p := console.post("/admin/outbox/receivers", url.Values{"issuer": {"http://edr.example"}, "audience": {e.issuer}}); p.status != http.StatusBadRequest {
		t.Fatalf("a bad transmitter: %d", p.status)
	}
	if code, _ := tx.push(tx.set(storage.SETDeviceComplianceChange, map[string]any{"current_status": "not-compliant"}, issSub(tx.iss, "alice"), nil)); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	p = console.get(e.issuer + "/admin/outbox")
	for _, want := range []string{"Shared Signals streams", "push to", "503 Service Unavailable", `action="/admin/outbox/` + failed[0].ID + `/retry"`,
		tx.iss, "device-compliance-change: risk floor"} {
		if !strings.Contains(html.UnescapeString(p.body), want) {
			t.Fatalf("the delivery page lacks %q:\n%.5000s", want, p.body)
		}
	}
	if p := console.get(e.issuer + "/admin/users/u-alice"); !strings.Contains(p.body, "Received risk") || !strings.Contains(p.body, "device not compliant, reported by "+tx.iss) {
		t.Errorf("the user's page does not show the received risk:\n%.3000s", p.body)
	}
	recv.mu.Lock()
	recv.fail = 0
	recv.mu.Unlock()
	if p := console.post("/admin/outbox/"+failed[0].ID+"/retry", nil); !strings.Contains(p.body, "The delivery was queued again") {
		t.Fatalf("retry: %d", p.status)
	}
	e.deliver()
	if acc, _ := recv.got(); len(acc) != 1 || acc[0].Events[storage.SETAccountDisabled] == nil {
		t.Fatalf("after the retry: %+v", acc)
	}
	if p := console.post("/admin/outbox/receivers/delete", url.Values{"issuer": {tx.iss}}); !strings.Contains(p.body, "The transmitter was removed") {
		t.Fatalf("remove: %d", p.status)
	}
	if code, errc := tx.push(tx.set(storage.SETSessionRevoked, map[string]any{}, issSub(tx.iss, "alice"), nil)); code != http.StatusBadRequest || errc != "invalid_issuer" {
		t.Fatalf("after removal: %d %s", code, errc)
	}
	if ev := e.lastEvent(storage.EventAdminSSFReceiverDeleted); ev.ActorID != adaID {
		t.Errorf("audit: %+v", ev)
	}
}

// A step-up raises the session's level: the stream that asked for it gets
// a CAEP assurance-level-change about that session (sfa to mfa, increase).
func TestSSFAssuranceLevelRaisedByStepUp(t *testing.T) {
	e := newEnv(t)
	secret := e.enrollTOTP("u-alice")
	recv := newSETReceiver(e, rpClient)
	e.createStream(rpClient, e.rpSecret, map[string]any{
		"delivery":         map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": recv.srv.URL},
		"events_requested": []string{storage.SETAssuranceLevelChange},
	})
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	first := r.login(b, nil)
	e.deliver()
	if acc, _ := recv.got(); len(acc) != 0 {
		t.Fatalf("a first sign-in is no change of a session's level: %v", acc)
	}
	e.clock.Advance(30 * time.Second)
	a := r.authURL(url.Values{"acr_values": {acrMFA}})
	tok := r.mustExchange(r.code(b.submitCode(b.get(a.url), "/login/otp", e.totp(secret)), a), a)
	e.deliver()
	acc, refused := recv.got()
	if len(acc) != 1 || len(refused) != 0 {
		t.Fatalf("accepted %v refused %v", acc, refused)
	}
	ev := acc[0].Events[storage.SETAssuranceLevelChange]
	sess, _ := acc[0].SubID["session"].(map[string]any)
	if ev["previous_level"] != acrSFA || ev["current_level"] != acrMFA || ev["change_direction"] != "increase" ||
		sess["id"] != first.claims.SID || tok.claims.SID != first.claims.SID {
		t.Fatalf("assurance-level-change %v sub_id %v", ev, acc[0].SubID)
	}
}

// A polled SET never acknowledged is given up after a week (audited, in
// the console); a Retry holds it for polling again rather than failing it
// at once.
func TestSSFPollExpiresAndRetries(t *testing.T) {
	e := newEnv(t)
	e.createStream(rpClient, e.rpSecret, map[string]any{
		"delivery": map[string]any{"method": "urn:ietf:rfc:8936"}, "events_requested": []string{storage.SETAccountDisabled},
	})
	if err := admin.Signal(t.Context(), e.store, e.clock.Now(), admin.AccountStatus("u-alice", true)); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	e.clock.Advance(6 * 24 * time.Hour)
	e.deliver()
	if ms, _ := e.store.OutboxMessages(t.Context(), rpClient, storage.OutboxFailed, 10); len(ms) != 0 {
		t.Fatal("given up before it expired")
	}
	e.clock.Advance(2 * 24 * time.Hour)
	e.deliver()
	failed, _ := e.store.OutboxMessages(t.Context(), rpClient, storage.OutboxFailed, 10)
	if len(failed) != 1 || !strings.Contains(failed[0].LastError, "not acknowledged") {
		t.Fatalf("after a week: %+v", failed)
	}
	if ev := e.lastEvent(storage.EventOutboxGaveUp); ev.ClientID != rpClient || ev.UserID != "u-alice" {
		t.Errorf("gave up audit: %+v", ev)
	}
	code, body := e.ssfCall(http.MethodPost, "/ssf/poll", rpClient, e.rpSecret, map[string]any{})
	if code != http.StatusOK || strings.Contains(string(body), failed[0].ID) {
		t.Fatalf("a given-up SET was polled: %d %s", code, body)
	}
	if err := ssCLI(e).RetryOutbox(t.Context(), admin.Actor{ID: "u-admin"}, failed[0].ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.deliver()
	if m, err := e.store.OutboxMessage(t.Context(), failed[0].ID); err != nil || m.Status != storage.OutboxPending {
		t.Fatalf("after the retry: %+v %v", m, err)
	}
	if code, body := e.ssfCall(http.MethodPost, "/ssf/poll", rpClient, e.rpSecret, map[string]any{}); code != http.StatusOK || !strings.Contains(string(body), failed[0].ID) {
		t.Fatalf("not polled after the retry: %d %s", code, body)
	}
}

// A third-party app's stream hears only of the users who consented to it;
// a first-party app's of every user.
func TestSSFStreamsHearOnlyOfTheirUsers(t *testing.T) {
	e := newEnv(t)
	e.addClient(storage.Client{ID: "third", Name: "Third", SecretHash: factor.HashToken("s3cret-third"), RedirectURIs: []string{rpRedirect},
		AuthMethod: "client_secret_basic", GrantTypes: []string{"authorization_code"}, IDTokenAlg: "RS256"})
	first, third := newSETReceiver(e, rpClient), newSETReceiver(e, "third")
	for _, s := range []struct {
		id, secret string
		recv       *setReceiver
	}{{rpClient, e.rpSecret, first}, {"third", "s3cret-third", third}} {
		e.createStream(s.id, s.secret, map[string]any{
			"delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": s.recv.srv.URL}, "events_requested": []string{storage.SETAccountDisabled},
		})
	}
	bob := e.addUser("bob", "bob's long password")
	if err := e.store.SaveConsent(t.Context(), bob.ID, "third", []string{"openid"}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u-alice", bob.ID} {
		if _, err := ssCLI(e).SetDisabled(context.Background(), admin.Actor{ID: "cli", Reason: "x"}, id, true, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.deliver()
	subs := func(r *setReceiver) []string {
		acc, _ := r.got()
		var out []string
		for _, c := range acc {
			out = append(out, fmt.Sprint(c.SubID["sub"]))
		}
		slices.Sort(out)
		return out
	}
	if got := subs(first); !slices.Equal(got, []string{"u-alice", "u-bob"}) {
		t.Errorf("first-party stream heard of %v", got)
	}
	if got := subs(third); !slices.Equal(got, []string{"u-bob"}) {
		t.Errorf("third-party stream heard of %v, want only the user who consented", got)
	}
}

// A client manages its stream with an access token of its own
// client_credentials grant with the scope ssf.manage; a token without the
// scope, or one issued for a user, does not.
func TestSSFStreamManagementWithAnAccessToken(t *testing.T) {
	e := newEnv(t)
	token := func(scope string) string {
		t.Helper()
		code, out, _ := e.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, rpClient, e.rpSecret)
		tok, _ := out["access_token"].(string)
		if code != http.StatusOK || tok == "" {
			t.Fatalf("client_credentials: %d %v", code, out)
		}
		return tok
	}
	push := map[string]any{"delivery": map[string]any{"method": "urn:ietf:rfc:8935", "endpoint_url": "https://rp.example/ssf"}}
	if code, body := e.ssfCall(http.MethodPost, "/ssf/stream", "Bearer", token("payroll.read"), push); code != http.StatusForbidden || !strings.Contains(string(body), "insufficient_scope") {
		t.Fatalf("without the scope: %d %s", code, body)
	}
	user := e.rp(rpClient, e.rpSecret).login(e.browser(), nil)
	if code, body := e.ssfCall(http.MethodPost, "/ssf/stream", "Bearer", user.token.AccessToken, push); code != http.StatusUnauthorized {
		t.Fatalf("a user's token: %d %s", code, body)
	}
	if code, body := e.ssfCall(http.MethodPost, "/ssf/stream", "Bearer", "not-a-token", push); code != http.StatusUnauthorized {
		t.Fatalf("garbage: %d %s", code, body)
	}
	if sts, _ := e.store.ListStreams(t.Context()); len(sts) != 0 {
		t.Fatalf("a refused call made a stream: %v", sts)
	}
	tok := token("ssf.manage")
	code, body := e.ssfCall(http.MethodPost, "/ssf/stream", "Bearer", tok, push)
	if code != http.StatusCreated {
		t.Fatalf("with ssf.manage: %d %s", code, body)
	}
	var cfg map[string]any
	_ = json.Unmarshal(body, &cfg)
	if cfg["aud"] != rpClient {
		t.Fatalf("stream: %v", cfg)
	}
	if code, _ := e.ssfCall(http.MethodGet, "/ssf/status?stream_id="+cfg["stream_id"].(string), "Bearer", tok, nil); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
}
