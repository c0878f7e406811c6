// Package mail sends Keystep's email: a Message rendered from the embedded
// templates (plain text and HTML), written as RFC 5322 bytes and handed to
// a Sender — an SMTP relay (SMTP) or, for development, a directory of .eml
// files (Dir). Handlers never send: they queue a Message in the outbox
// (storage.OutboxMail) and its worker calls the Sender, so a relay that is
// down delays mail and loses none.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Message is one email to one person. Its JSON names are the outbox
// payload's schema.
type Message struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
}

// Sender delivers a Message. An error is worth retrying unless it wraps
// ErrPermanent.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrPermanent marks a failure no retry can fix (a malformed address, a
// recipient the relay refuses for good).
var ErrPermanent = errors.New("permanent mail failure")

// Address checks addr as one bare email address (no display name, no
// comments) and returns it as given.
func Address(addr string) (string, error) {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr || len(addr) > 254 {
		return "", fmt.Errorf("%q is not an email address", addr)
	}
	return addr, nil
}

// Render writes m as an RFC 5322 message from from (an address, with an
// optional display name) dated now: multipart/alternative with the text
// part first and the HTML part last (RFC 2046 §5.1.4: the preferred one
// last), both quoted-printable UTF-8, the subject encoded (RFC 2047).
func Render(m Message, from string, now time.Time) ([]byte, error) {
	f, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", from, ErrPermanent)
	}
	if _, err := Address(m.To); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrPermanent)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, fmt.Errorf("subject has a line break: %w", ErrPermanent)
	}
	id, err := token()
	if err != nil {
		return nil, err
	}
	domain := f.Address[strings.LastIndexByte(f.Address, '@')+1:]

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, p := range []struct{ typ, content string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(crlf(p.content))); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", f.String())
	header("To", (&mail.Address{Address: m.To}).String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+id+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	// RFC 3834 §5: a notice, not a conversation; no auto-replies.
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

// crlf makes every line end in CRLF (RFC 5322 §2.3).
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// token is 128 random bits in hex.
func token() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Queued is the payload of an outbox mail message (storage.OutboxMail):
// the message, and whose account it is about (under "sub", as the
// outbox's other payloads name it, so a given-up message's audit row
// names the user).
type Queued struct {
	UserID  string  `json:"sub"`
	Message Message `json:"message"`
}
