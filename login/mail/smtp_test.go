package mail

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var t0 = time.Date(2026, 12, 7, 14, 7, 0, 0, time.UTC)

// sink is a real SMTP server (go-smtp) that keeps what it receives.
type sink struct {
	mu       sync.Mutex
	got      []received
	user     string // "" accepts any AUTH; set, only these credentials
	password string
	tlsState []bool // per AUTH: whether the connection was TLS
}

type received struct {
	From, To string
	Data     []byte
	Authed   string
}

type sinkSession struct {
	s    *sink
	c    *smtp.Conn
	cur  received
	user string
}

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s, c: c}, nil }

func (x *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (x *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		_, isTLS := x.c.TLSConnectionState()
		x.s.mu.Lock()
		x.s.tlsState = append(x.s.tlsState, isTLS)
		x.s.mu.Unlock()
		if user != x.s.user || pass != x.s.password {
			return errors.New("bad credentials")
		}
		x.user = user
		return nil
	}), nil
}
func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error { x.cur.From = from; return nil }
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	x.cur.To = to
	return nil
}
func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.cur.Data, x.cur.Authed = b, x.user
	x.s.mu.Lock()
	x.s.got = append(x.s.got, x.cur)
	x.s.mu.Unlock()
	return nil
}
func (x *sinkSession) Reset()        { x.cur = received{} }
func (x *sinkSession) Logout() error { return nil }

// startSink serves s on a loopback port; with cert, it offers STARTTLS
// (or, implicit, speaks TLS at once).
func startSink(t *testing.T, s *sink, cert *tls.Certificate, implicit bool) int {
	t.Helper()
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var l net.Listener
	var err error
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	if implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	if cert == nil {
		srv.AllowInsecureAuth = true // plain on loopback
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned is a certificate for localhost and 127.0.0.1, and the pool
// that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func testMessage(t *testing.T) Message {
	t.Helper()
	m, err := Compose(english(t), FactorAdded, "ada@example.com", Data{
		Product: "Acme ID", Username: "ada", When: t0, IP: "203.0.113.7", Device: "Firefox on Linux",
		Factor: "authenticator app", Link: "https://id.example.com/account/activity",
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// parts parses data as the message Render writes and returns its
// header and its text and HTML parts, decoded.
func parts(t *testing.T, data []byte) (mail.Header, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, data)
	}
	typ, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || typ != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var got []string
	var types []string
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, p.Header.Get("Content-Type"))
		got = append(got, string(b))
	}
	if len(got) != 2 || types[0] != "text/plain; charset=utf-8" || types[1] != "text/html; charset=utf-8" {
		t.Fatalf("parts %q, want text then HTML", types)
	}
	return msg.Header, got[0], got[1]
}

func checkMessage(t *testing.T, data []byte, from string) {
	t.Helper()
	h, text, html := parts(t, data)
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"From": from, "To": "<ada@example.com>", "MIME-Version": "1.0", "Date": t0.Format(time.RFC1123Z),
		"Auto-Submitted": "auto-generated",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if subject != "A way to sign in was added to your Acme ID account" {
		t.Errorf("Subject = %q", subject)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID = %q", id)
	}
	for _, want := range []string{"authenticator app", "7 Dec 2026 14:07 UTC", "203.0.113.7", "Firefox on Linux",
		"https://id.example.com/account/activity"} {
		if !strings.Contains(text, want) || !strings.Contains(html, want) {
			t.Errorf("text or HTML part lacks %q\ntext:\n%s\nhtml:\n%s", want, text, html)
		}
	}
	if !strings.HasPrefix(html, "<!DOCTYPE html>") {
		t.Errorf("HTML part does not start with a doctype: %.60q", html)
	}
}

func TestSMTPStartTLSWithAuthPlain(t *testing.T) {
	cert, pool := selfSigned(t)
	s := &sink{user: "keystep", password: "s3cret"}
	port := startSink(t, s, &cert, false)
	snd := &SMTP{Host: "localhost", Port: port, TLS: TLSStartTLS, Username: "keystep", Password: "s3cret",
		From: "Acme ID <id@example.com>", RootCAs: pool, Now: func() time.Time { return t0 }}
	if err := snd.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if len(s.got) != 1 {
		t.Fatalf("sink received %d messages, want 1", len(s.got))
	}
	r := s.got[0]
	if r.From != "id@example.com" || r.To != "ada@example.com" || r.Authed != "keystep" {
		t.Errorf("envelope %q → %q as %q", r.From, r.To, r.Authed)
	}
	if len(s.tlsState) != 1 || !s.tlsState[0] {
		t.Errorf("AUTH over TLS: %v, want [true]", s.tlsState)
	}
	checkMessage(t, r.Data, `"Acme ID" <id@example.com>`)
}

func TestSMTPImplicitTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	s := &sink{user: "keystep", password: "s3cret"}
	port := startSink(t, s, &cert, true)
	snd := &SMTP{Host: "127.0.0.1", Port: port, TLS: TLSImplicit, Username: "keystep", Password: "s3cret",
		From: "id@example.com", RootCAs: pool, Now: func() time.Time { return t0 }}
	if err := snd.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if len(s.got) != 1 || len(s.tlsState) != 1 || !s.tlsState[0] {
		t.Fatalf("got %d messages, AUTH over TLS %v", len(s.got), s.tlsState)
	}
	checkMessage(t, s.got[0].Data, "<id@example.com>")
}

func TestSMTPPlainOnLoopback(t *testing.T) {
	s := &sink{}
	port := startSink(t, s, nil, false)
	snd := &SMTP{Host: "127.0.0.1", Port: port, TLS: TLSNone, From: "id@example.com", Now: func() time.Time { return t0 }}
	if err := snd.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if len(s.got) != 1 {
		t.Fatalf("sink received %d messages, want 1", len(s.got))
	}
	checkMessage(t, s.got[0].Data, "<id@example.com>")
}

func TestSMTPRefusesToSendCredentialsInClear(t *testing.T) {
	// A server without STARTTLS (or one whose offer a man in the middle
	// stripped): asked for starttls, the sender says nothing, least of
	// all the password.
	s := &sink{user: "keystep", password: "s3cret"}
	port := startSink(t, s, nil, false)
	snd := &SMTP{Host: "127.0.0.1", Port: port, TLS: TLSStartTLS, Username: "keystep", Password: "s3cret", From: "id@example.com"}
	err := snd.Send(context.Background(), testMessage(t))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send = %v, want a refusal for the missing STARTTLS", err)
	}
	if len(s.got) != 0 || len(s.tlsState) != 0 {
		t.Errorf("sink got %d messages and %d AUTH attempts, want none", len(s.got), len(s.tlsState))
	}
}

func TestSMTPUntrustedCertificateRefused(t *testing.T) {
	cert, _ := selfSigned(t)
	s := &sink{user: "keystep", password: "s3cret"}
	port := startSink(t, s, &cert, false)
	snd := &SMTP{Host: "localhost", Port: port, Username: "keystep", Password: "s3cret", From: "id@example.com"}
	if err := snd.Send(context.Background(), testMessage(t)); err == nil {
		t.Fatal("Send to a server with an untrusted certificate succeeded")
	}
	if len(s.tlsState) != 0 {
		t.Errorf("credentials offered to an untrusted server")
	}
}

func TestSMTPRejectedRecipientIsPermanent(t *testing.T) {
	s := &sink{}
	port := startSink(t, s, nil, false)
	snd := &SMTP{Host: "127.0.0.1", Port: port, TLS: TLSNone, From: "id@example.com"}
	m := testMessage(t)
	m.To = "nobody@example.com"
	if err := snd.Send(context.Background(), m); !errors.Is(err, ErrPermanent) {
		t.Fatalf("Send = %v, want ErrPermanent", err)
	}
}

func TestSMTPValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    SMTP
		want []string
	}{
		{"a good relay passes", SMTP{Host: "smtp.example.com", Port: 587, From: "Acme <id@example.com>"}, nil},
		{"tls none to a remote host is refused", SMTP{Host: "smtp.example.com", Port: 25, TLS: TLSNone, From: "id@example.com"}, []string{"loopback host only"}},
		{"every problem is listed at once", SMTP{Port: 0, TLS: "ssl", Password: "x", From: "not an address"},
			[]string{"a host is needed", "is not a port", `tls "ssl"`, "password without a user name", "is not an address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

func TestRenderRefusesHeaderInjection(t *testing.T) {
	for _, m := range []Message{
		{To: "ada@example.com\r\nBcc: eve@example.com", Subject: "hi"},
		{To: "ada@example.com", Subject: "hi\r\nBcc: eve@example.com"},
		{To: "Ada <ada@example.com>", Subject: "hi"},
	} {
		if _, err := Render(m, "id@example.com", t0); !errors.Is(err, ErrPermanent) {
			t.Errorf("Render(%q, %q) = %v, want ErrPermanent", m.To, m.Subject, err)
		}
	}
}

func TestRenderEncodesANonASCIISubject(t *testing.T) {
	data, err := Render(Message{To: "ada@example.com", Subject: "Grüße aus Zürich", Text: "ü", HTML: "<p>ü</p>"}, "id@example.com", t0)
	if err != nil {
		t.Fatal(err)
	}
	h, text, _ := parts(t, data)
	if raw := h.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
		t.Errorf("raw Subject %q is not RFC 2047 encoded", raw)
	}
	if s, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); s != "Grüße aus Zürich" {
		t.Errorf("Subject decodes to %q", s)
	}
	if text != "ü" {
		t.Errorf("text part %q", text)
	}
}

func TestDirWritesAParseableEML(t *testing.T) {
	d := &Dir{Path: t.TempDir() + "/mail", From: "Acme ID <id@example.com>", Now: func() time.Time { return t0 }}
	if err := d.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(d.Path + "/*.eml")
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v (%v), want one .eml", files, err)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, data, `"Acme ID" <id@example.com>`)
}

func TestComposeEveryKind(t *testing.T) {
	d := Data{Username: "ada", When: t0, IP: "203.0.113.7", Device: "Safari on iPhone", Factor: "passkey",
		Address: "new@example.com", Link: "https://id.example.com/x?a=1&b=<2>", Expires: 30 * time.Minute}
	for _, k := range Kinds() {
		m, err := Compose(english(t), k, "ada@example.com", d)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if m.Subject == "" || !strings.Contains(m.Text, "ada") || !strings.Contains(m.HTML, "ada") {
			t.Errorf("%s: subject %q; text or HTML lacks the name", k, m.Subject)
		}
		if !strings.Contains(m.Text, d.Link) || !strings.Contains(m.HTML, "https://id.example.com/x?a=1&amp;b=%3c2%3e") {
			t.Errorf("%s: the link is missing or not escaped for HTML:\n%s", k, m.HTML)
		}
	}
	if _, err := Compose(english(t), NewSignIn, "not an address", d); err == nil {
		t.Error("Compose to a bad address succeeded")
	}
}
