package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/keystep/keystep/idp"
	kmail "github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// smtpSink is a real SMTP server (go-smtp) on loopback that keeps every
// message it accepts.
type smtpSink struct {
	mu   sync.Mutex
	msgs []sunkMessage
	port int
}

type sunkMessage struct {
	to   string
	data []byte
}

func (s *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct {
	s  *smtpSink
	to string
}

func (x *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	x.to = to
	return nil
}
func (x *sinkSession) Reset()        {}
func (x *sinkSession) Logout() error { return nil }
func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, sunkMessage{to: x.to, data: b})
	x.s.mu.Unlock()
	return nil
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	s := &smtpSink{}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s.port = l.Addr().(*net.TCPAddr).Port
	return s
}

// withSMTP makes the server send its mail to the sink, in clear on
// loopback.
func withSMTP(s *smtpSink) envOption {
	return func(c *idp.Config) {
		c.Mail = &kmail.SMTP{Host: "127.0.0.1", Port: s.port, TLS: kmail.TLSNone, From: "Keystep <id@example.com>", Now: c.Now}
	}
}

// deliver runs the outbox once and returns what reached the sink since
// the last call: each message's recipient, subject and text part.
func (s *smtpSink) deliver(t *testing.T, e *env) []struct{ to, subject, text string } {
	t.Helper()
	if _, err := e.server.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	msgs := s.msgs
	s.msgs = nil
	s.mu.Unlock()
	var out []struct{ to, subject, text string }
	for _, m := range msgs {
		msg, err := mail.ReadMessage(bytes.NewReader(m.data))
		if err != nil {
			t.Fatal(err)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		part, err := multipart.NewReader(msg.Body, params["boundary"]).NextPart()
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(part)
		out = append(out, struct{ to, subject, text string }{m.to, subject, string(text)})
	}
	return out
}

// Issue 22: an address becomes the account's, and email_verified true in
// the app's tokens, only through the link that reached it; the old
// address is told when it changes again.
func TestEmailVerifiedThroughTheRelay(t *testing.T) {
	sink := startSMTPSink(t)
	e := newEnv(t, withSMTP(sink))
	u, err := e.store.UserByID(t.Context(), "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	u.Email = "alice@admin-set.example" // as `users create --email` does
	if err := e.store.UpdateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	r := e.rp(rpClient, e.rpSecret)
	b := e.browser()
	userinfo := func() (string, bool) {
		t.Helper()
		tok := r.login(e.browser(), url.Values{"scope": {"openid email"}})
		ui, err := r.provider.UserInfo(t.Context(), oauthSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		return ui.Email, ui.EmailVerified
	}
	if email, verified := userinfo(); email != "alice@admin-set.example" || verified {
		t.Fatalf("an admin-set address: email %q verified %v, want unverified", email, verified)
	}

	change := func(addr string) {
		t.Helper()
		p := b.get(e.issuer + "/account/email")
		if p.has("/login/password") {
			p = b.signIn(p, alice, alicePass)
		}
		if !p.has("/account/email") {
			t.Fatalf("no email form: %d %s\n%.1500s", p.status, p.url, p.body)
		}
		if p = b.post("/account/email", url.Values{"email": {addr}}); p.status != 200 || !strings.Contains(p.body, "We sent a link to") {
			t.Fatalf("asking for %s: %d\n%.1500s", addr, p.status, p.body)
		}
		got := sink.deliver(t, e)
		if len(got) != 1 || got[0].to != addr || got[0].subject != "Confirm your email address for Keystep" {
			t.Fatalf("relay received %+v, want one confirmation to %s", got, addr)
		}
		i := strings.Index(got[0].text, e.issuer+"/account/email/confirm?")
		if i < 0 {
			t.Fatalf("no link in:\n%s", got[0].text)
		}
		link := strings.Fields(got[0].text[i:])[0]
		if p = b.get(link); p.status != 200 || !strings.Contains(p.body, "Your email address is confirmed.") {
			t.Fatalf("opening the link: %d %s\n%.1500s", p.status, p.url, p.body)
		}
		if p = b.get(link); p.status != 410 {
			t.Fatalf("the link a second time: %d, want 410", p.status)
		}
	}
	change("alice@one.example")
	if got := sink.deliver(t, e); len(got) != 0 {
		t.Fatalf("an address never confirmed was told: %+v", got)
	}
	if email, verified := userinfo(); email != "alice@one.example" || !verified {
		t.Fatalf("after the link: email %q verified %v", email, verified)
	}
	change("alice@two.example")
	got := sink.deliver(t, e)
	if len(got) != 1 || got[0].to != "alice@one.example" || !strings.Contains(got[0].text, "changed to alice@two.example") {
		t.Fatalf("the old address was not told: %+v", got)
	}
}

// queueMail puts a mail message about alice to to in the outbox.
func queueMail(t *testing.T, e *env, id, to string) {
	t.Helper()
	payload, _ := json.Marshal(kmail.Queued{UserID: "u-alice", Message: kmail.Message{To: to, Subject: "s", Text: "t", HTML: "<p>h</p>"}})
	now := e.clock.Now()
	if err := e.store.QueueOutbox(t.Context(), []storage.OutboxMessage{{ID: id, Kind: storage.OutboxMail, Target: "mailto:" + to,
		Payload: string(payload), QueuedAt: now, NextAttemptAt: now}}); err != nil {
		t.Fatal(err)
	}
}

// A recipient the relay refuses for good (5xx) is given up at once, and
// the audit row names the user; mail left queued when email was turned
// off is given up too, not retried for a day.
func TestMailThatCannotGoIsGivenUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []envOption
		to   string
		why  string
	}{
		{"a refused recipient", []envOption{withSMTP(startSMTPSink(t))}, "nobody@example.com", "550"},
		{"no sender configured", nil, "alice@example.com", "email is not set up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			queueMail(t, e, "m1", tc.to)
			if _, err := e.server.DeliverDue(t.Context()); err != nil {
				t.Fatal(err)
			}
			m, err := e.store.OutboxMessage(t.Context(), "m1")
			if err != nil || m.Status != storage.OutboxFailed || m.Attempts != 1 || !strings.Contains(m.LastError, tc.why) {
				t.Fatalf("message: %+v (%v), want given up after one attempt for %q", m, err, tc.why)
			}
			if ev := e.lastEvent(storage.EventOutboxGaveUp); ev.UserID != "u-alice" || ev.Details["kind"] != string(storage.OutboxMail) {
				t.Fatalf("audit: %+v", ev)
			}
		})
	}
}
