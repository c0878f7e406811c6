package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

func TestMailFlags(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    mailFlags
		want string // the sender, or the problems
	}{
		{name: "no host and no folder: email is off", m: mailFlags{tls: mail.TLSStartTLS}, want: "<nil>"},
		{name: "a relay with STARTTLS on 587 by default", m: mailFlags{host: "smtp.example.com", tls: mail.TLSStartTLS, user: "id", passwordFile: pwFile, from: "id@example.com"},
			want: "smtp smtp.example.com:587 starttls id s3cret"},
		{name: "implicit TLS defaults to 465", m: mailFlags{host: "smtp.example.com", tls: mail.TLSImplicit, from: "id@example.com"},
			want: "smtp smtp.example.com:465 implicit  "},
		{name: "a folder for development", m: mailFlags{dir: "/tmp/mail", tls: mail.TLSStartTLS, from: "Acme <id@example.com>"}, want: "dir /tmp/mail"},
		{name: "every problem at once", m: mailFlags{host: "smtp.example.com", tls: "ssl", user: "id", port: 99999},
			want: "--mail-from is needed|--smtp-user needs --smtp-password-file|is not a port|tls \"ssl\""},
		{name: "clear text to a remote relay is refused", m: mailFlags{host: "smtp.example.com", tls: mail.TLSNone, from: "id@example.com"},
			want: "loopback host only"},
		{name: "both a relay and a folder is refused", m: mailFlags{host: "smtp.example.com", dir: "/tmp/mail", tls: mail.TLSStartTLS, from: "id@example.com"},
			want: "choose one"},
		{name: "a missing password file is refused", m: mailFlags{host: "smtp.example.com", tls: mail.TLSStartTLS, user: "id", passwordFile: "/nonexistent/pw", from: "id@example.com"},
			want: "--smtp-password-file"},
		{name: "a sender setting without a relay is refused", m: mailFlags{tls: mail.TLSStartTLS, from: "id@example.com"}, want: "need --smtp-host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.m.sender()
			var got string
			switch s := s.(type) {
			case nil:
				got = "<nil>"
			case *mail.SMTP:
				got = fmt.Sprintf("smtp %s:%d %s %s %s", s.Host, s.Port, s.TLS, s.Username, s.Password)
			case *mail.Dir:
				got = "dir " + s.Path
			}
			if err != nil {
				for _, w := range strings.Split(tt.want, "|") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want it to say %q", err, w)
					}
				}
				if s != nil {
					t.Errorf("a sender (%s) with errors", got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("sender = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestServeRefusesBadMailFlagsBeforeTouchingData(t *testing.T) {
	d := t.TempDir()
	r := keystep(t, "", "serve", "--data", d, "--addr", "127.0.0.1:0", "--smtp-host", "smtp.example.com", "--smtp-tls", "none")
	wantExit(t, r, 2, "--mail-from is needed", "loopback host only")
	noFile(t, filepath.Join(d, "keystep.db"))
}

func TestUsersCreateEmailIsUnverifiedUnlessVouchedFor(t *testing.T) {
	d := t.TempDir()
	if u := createUser(t, d, "alice", "--email", "alice@example.com"); u.Email != "alice@example.com" || u.EmailVerified {
		t.Errorf("alice: %+v, want an unverified address", u)
	}
	if u := createUser(t, d, "bob", "--email", "bob@example.com", "--email-verified"); !u.EmailVerified {
		t.Errorf("bob: %+v, want a verified address", u)
	}
	withStore(t, d, func(st storage.Store) {
		u, err := st.UserByUsername(t.Context(), "bob")
		if err != nil || !u.EmailVerified || u.EmailVerifiedAt.IsZero() {
			t.Errorf("bob stored: %+v %v", u, err)
		}
	})
	r := keystep(t, testPassword, "users", "create", "--username", "carol", "--password-stdin", "--email-verified", "--data", d)
	wantExit(t, r, 2, "--email-verified needs --email")
}
