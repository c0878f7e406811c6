package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// mailFlags are serve's email settings: an SMTP relay, or (development) a
// directory the messages are written to as .eml files. Neither: email is
// off, and the portal says so.
type mailFlags struct {
	host, tls, user, passwordFile, from, dir string
	port                                     int
	envPort                                  error
}

func (m *mailFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.host, "smtp-host", env("SMTP_HOST", ""), "SMTP relay that sends Keystep's email (off when empty)")
	port, err := strconv.Atoi(env("SMTP_PORT", "0"))
	if err != nil {
		m.envPort = fmt.Errorf("KEYSTEP_SMTP_PORT: %w", err)
	}
	fs.IntVar(&m.port, "smtp-port", port, "SMTP port (default 587 for starttls, 465 for implicit, 25 for none)")
	fs.StringVar(&m.tls, "smtp-tls", env("SMTP_TLS", mail.TLSStartTLS), "starttls, implicit, or none (loopback relays only)")
	fs.StringVar(&m.user, "smtp-user", env("SMTP_USER", ""), "SMTP user name (AUTH PLAIN, only ever over TLS)")
	fs.StringVar(&m.passwordFile, "smtp-password-file", env("SMTP_PASSWORD_FILE", ""), "file holding the SMTP password")
	fs.StringVar(&m.from, "mail-from", env("MAIL_FROM", ""), `sender of Keystep's email, e.g. "Acme ID <id@example.com>"`)
	fs.StringVar(&m.dir, "mail-dir", env("MAIL_DIR", ""), "development: write each email as an .eml file in this folder instead of sending it")
}

// sender is the configured mail.Sender, nil when email is off, or every
// problem with the settings at once.
func (m *mailFlags) sender() (mail.Sender, error) {
	var errs []error
	if m.envPort != nil {
		errs = append(errs, m.envPort)
	}
	switch {
	case m.host == "" && m.dir == "":
		if m.from != "" || m.user != "" || m.passwordFile != "" {
			errs = append(errs, errors.New("--mail-from, --smtp-user and --smtp-password-file need --smtp-host (or --mail-dir)"))
		}
		return nil, errors.Join(errs...)
	case m.host != "" && m.dir != "":
		errs = append(errs, errors.New("--smtp-host and --mail-dir: choose one"))
	case m.from == "":
		errs = append(errs, errors.New("--mail-from is needed to send email"))
	}
	if m.dir != "" {
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		if _, err := mail.Render(mail.Message{To: "check@example.com"}, m.from, clock()); err != nil {
			return nil, fmt.Errorf("--mail-from %q is not an address", m.from)
		}
		return &mail.Dir{Path: m.dir, From: m.from, Now: clock}, nil
	}
	s := &mail.SMTP{Host: m.host, Port: m.port, TLS: m.tls, Username: m.user, From: m.from, Now: clock}
	if s.Port == 0 {
		s.Port = map[string]int{mail.TLSStartTLS: 587, mail.TLSImplicit: 465, mail.TLSNone: 25}[m.tls]
	}
	switch {
	case m.user != "" && m.passwordFile == "":
		errs = append(errs, errors.New("--smtp-user needs --smtp-password-file"))
	case m.passwordFile != "":
		// Secrets come from files, never from flag values (STYLE.md).
		b, err := os.ReadFile(m.passwordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--smtp-password-file: %w", err))
		}
		s.Password = strings.TrimRight(string(b), "\r\n")
	}
	if err := s.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// verifiedNote says after a user's address whether it is verified.
func verifiedNote(u storage.User) string {
	switch {
	case u.Email == "":
		return ""
	case u.EmailVerified:
		return " (verified)"
	}
	return " (not verified)"
}
