package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"strconv"
	"time"
)

// The ways SMTP protects a connection (SMTP.TLS).
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS (RFC 3207),
	// and refuses to go on when the server does not offer it.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314 §3.3, port 465).
	TLSImplicit = "implicit"
	// TLSNone sends in clear: for a relay on loopback only.
	TLSNone = "none"
)

// SMTP sends through an SMTP relay, one connection per message.
type SMTP struct {
	Host string
	Port int
	// TLS is TLSStartTLS (the default), TLSImplicit or TLSNone.
	TLS string
	// Username and Password, when Username is set, authenticate with
	// AUTH PLAIN (RFC 4616) — only ever over TLS, or on loopback.
	Username string
	Password string
	// From is the sender: an address with an optional display name.
	From string
	// Timeout bounds a whole delivery (30 s).
	Timeout time.Duration
	// RootCAs verifies the server's certificate (nil: the system's).
	RootCAs *x509.CertPool
	// Now dates the messages (time.Now).
	Now func() time.Time
}

// Validate reports every problem with s at once.
func (s *SMTP) Validate() error {
	var errs []error
	if s.Host == "" {
		errs = append(errs, errors.New("smtp: a host is needed"))
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp: port %d is not a port", s.Port))
	}
	switch s.TLS {
	case "", TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !loopback(s.Host) {
			errs = append(errs, fmt.Errorf("smtp: tls %q is allowed for a loopback host only, not %q", TLSNone, s.Host))
		}
	default:
		errs = append(errs, fmt.Errorf("smtp: tls %q: want %s, %s or %s", s.TLS, TLSStartTLS, TLSImplicit, TLSNone))
	}
	if s.Username == "" && s.Password != "" {
		errs = append(errs, errors.New("smtp: a password without a user name"))
	}
	if _, err := Render(Message{To: "check@example.com"}, s.From, time.Time{}); err != nil {
		errs = append(errs, fmt.Errorf("smtp: from %q is not an address", s.From))
	}
	if s.Timeout < 0 {
		errs = append(errs, errors.New("smtp: the timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// Send delivers m: connect, TLS as configured, authenticate, one
// recipient, the data. A 5xx reply wraps ErrPermanent.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := s.Validate(); err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	data, err := Render(m, s.From, now())
	if err != nil {
		return err
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	tcfg := &tls.Config{ServerName: s.Host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	if s.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{Config: tcfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("smtp: connect to %s: %w", addr, err)
	}
	// The deadline covers every read and write; a cancelled context ends
	// the connection at once.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %s: %w", addr, err)
	}
	defer c.Close()
	if err := s.deliver(c, tcfg, m.To, data); err != nil {
		return fmt.Errorf("smtp: %s: %w", addr, classify(err))
	}
	return nil
}

func (s *SMTP) deliver(c *smtp.Client, tcfg *tls.Config, to string, data []byte) error {
	if s.TLS == "" || s.TLS == TLSStartTLS {
		// RFC 3207 §4: a server that does not offer STARTTLS (or a man in
		// the middle that stripped it) gets nothing, least of all the
		// credentials.
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS; refusing to send in clear")
		}
		if err := c.StartTLS(tcfg); err != nil {
			return err
		}
	}
	if s.Username != "" {
		// net/smtp's PlainAuth itself refuses a connection that is neither
		// TLS nor to localhost.
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server does not offer AUTH")
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return err
		}
	}
	from, err := mail.ParseAddress(s.From) // validated
	if err != nil {
		return err
	}
	if err := c.Mail(from.Address); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// classify wraps a 5xx reply (RFC 5321 §4.2.1: permanent) in ErrPermanent.
func classify(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return fmt.Errorf("%w: %w", err, ErrPermanent)
	}
	return err
}

// loopback says whether host is "localhost" or a loopback address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
