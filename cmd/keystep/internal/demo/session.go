package demo

import (
	"crypto/rand"
	"net/http"
	"sync"
	"time"

	"github.com/keystep/keystep/idp/dpop"
)

const (
	sessionCookie = "acme_session"
	stateCookie   = "acme_state"
	// sessionIdle ends a session nobody used for this long.
	sessionIdle = 8 * time.Hour
	// maxSessions bounds the in-memory store.
	maxSessions = 10000
	// authTimeout is how long a sign-in at Keystep may take.
	authTimeout = 10 * time.Minute
	maxEvents   = 12
)

// sessions is the app's server-side session store: a map in memory, keyed by
// a random cookie. Enough for a demo; it forgets everyone on restart.
type sessions struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[string]*session{}}
}

// session is one browser. Handlers hold mu for the whole request, so two
// tabs of one browser take turns.
type session struct {
	mu       sync.Mutex
	id       string    // written under both mu and sessions.mu
	lastSeen time.Time // guarded by sessions.mu

	pending *pendingAuth // a sign-in at Keystep in flight

	user user // zero until signed in
	// key is the session's DPoP key: the tokens are bound to it, and it
	// never leaves the app. Made at the first sign-in, kept for step-ups.
	key         *dpop.Prover
	accessToken string
	tokenType   string   // DPoP
	stolen      []replay // the last "What if it's stolen?" run
	rawIDToken  string   // for RP-initiated logout (id_token_hint)
	// retried is the page a step-up just came back for: if the API still
	// says no there, Keystep could not give more and the app says so
	// instead of sending the browser round in circles.
	retried string
	change  *bankChange // a bank account change waiting for a step-up
	payment *payment    // the invoice payment, asked for or made
	flash   string
	events  []event
}

// pendingAuth is one authorization request: what the callback checks.
type pendingAuth struct {
	state, nonce, verifier string
	returnTo               string
	details                string // authorization_details asked for, if any
	stepUp                 bool
	started                time.Time
}

// user is what the ID token says about the person and how they signed in.
type user struct {
	Subject  string
	Username string
	Name     string
	ACR      string
	AMR      []string
	AuthTime time.Time
	JKT      string // the access token's cnf.jkt
	// Details are the access token's authorization_details (RFC 9396),
	// indented JSON; "" when it has none.
	Details string
}

func (u user) displayName() string {
	switch {
	case u.Name != "":
		return u.Name
	case u.Username != "":
		return u.Username
	}
	return u.Subject
}

// event is one line of "what just happened" on the dashboard.
type event struct {
	Time   time.Time
	Text   string
	Detail string // protocol detail for developers, may be empty
}

func (s *session) signedIn() bool { return s.user.Subject != "" }

func (s *session) note(now time.Time, text, detail string) {
	s.events = append(s.events, event{Time: now, Text: text, Detail: detail})
	if n := len(s.events) - maxEvents; n > 0 {
		s.events = append([]event(nil), s.events[n:]...)
	}
}

// get returns the request's session, locked, or nil. The caller unlocks.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	now := ss.now()
	ss.mu.Lock()
	s := ss.m[c.Value]
	if s != nil && now.Sub(s.lastSeen) > sessionIdle {
		delete(ss.m, c.Value)
		s = nil
	}
	if s != nil {
		s.lastSeen = now
	}
	ss.mu.Unlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	// The session may have been rotated or deleted while we waited.
	ss.mu.Lock()
	live := ss.m[c.Value] == s
	ss.mu.Unlock()
	if !live {
		s.mu.Unlock()
		return nil
	}
	return s
}

// create starts a new, locked session and sets its cookie.
func (ss *sessions) create(w http.ResponseWriter, secure bool) *session {
	s := &session{lastSeen: ss.now()}
	s.mu.Lock()
	ss.mu.Lock()
	ss.pruneLocked()
	s.id = rand.Text()
	ss.m[s.id] = s
	ss.mu.Unlock()
	setCookie(w, sessionCookie, s.id, "/", 0, secure)
	return s
}

// rotate gives the locked session s a new ID and cookie, so an ID set
// before sign-in (session fixation) is worthless after it.
func (ss *sessions) rotate(w http.ResponseWriter, s *session, secure bool) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	s.id = rand.Text()
	ss.m[s.id] = s
	ss.mu.Unlock()
	setCookie(w, sessionCookie, s.id, "/", 0, secure)
}

// delete forgets the locked session s and clears its cookie.
func (ss *sessions) delete(w http.ResponseWriter, s *session, secure bool) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	ss.mu.Unlock()
	setCookie(w, sessionCookie, "", "/", -1, secure)
}

func (ss *sessions) pruneLocked() {
	now := ss.now()
	for id, s := range ss.m {
		if now.Sub(s.lastSeen) > sessionIdle {
			delete(ss.m, id)
		}
	}
	for id := range ss.m {
		if len(ss.m) < maxSessions {
			break
		}
		delete(ss.m, id) // full of live sessions: drop any one
	}
}

func setCookie(w http.ResponseWriter, name, value, path string, maxAge int, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	})
}
