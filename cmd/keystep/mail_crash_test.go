//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// heldSink is an SMTP server on loopback that answers the first messages
// and then holds the next ones open (no reply to DATA) until released.
type heldSink struct {
	mu       sync.Mutex
	got      map[string]int // recipient → messages accepted
	calls    int
	answered int
	hold     bool
	held     chan struct{} // closed once one is held
	release  chan struct{}
}

func (s *heldSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &heldSession{s: s}, nil }

type heldSession struct {
	s  *heldSink
	to string
}

func (x *heldSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (x *heldSession) Rcpt(to string, _ *smtp.RcptOptions) error { x.to = to; return nil }
func (x *heldSession) Reset()                                    {}
func (x *heldSession) Logout() error                             { return nil }
func (x *heldSession) Data(r io.Reader) error {
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	s := x.s
	s.mu.Lock()
	s.calls++
	if s.hold && s.calls > s.answered {
		select {
		case <-s.held:
		default:
			close(s.held)
		}
		s.mu.Unlock()
		<-s.release // the sender dies waiting for the reply
		return errors.New("released")
	}
	s.got[x.to]++
	s.mu.Unlock()
	return nil
}

// Issue 22: mail goes through the outbox, so a `keystep serve` killed
// with SIGKILL while messages are queued, one of them on the wire, loses
// none: after a restart every one reaches the relay.
func TestQueuedMailSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keystep")
	}
	const total, answered = 12, 4
	ctx := t.Context()
	bin := filepath.Join(t.TempDir(), "keystep")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/keystep/keystep/cmd/keystep").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sink := &heldSink{got: map[string]int{}, answered: answered, hold: true, held: make(chan struct{}), release: make(chan struct{})}
	srv := smtp.NewServer(sink)
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	defer func() {
		select {
		case <-sink.release:
		default:
			close(sink.release)
		}
	}()

	data := t.TempDir()
	c := common{data: data}
	st, _, err := c.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var msgs []storage.OutboxMessage
	for i := range total {
		to := fmt.Sprintf("user%02d@example.com", i)
		payload, _ := json.Marshal(mail.Queued{UserID: "u1", Message: mail.Message{To: to, Subject: "Your Keystep password was changed", Text: "t", HTML: "<p>h</p>"}})
		msgs = append(msgs, storage.OutboxMessage{ID: fmt.Sprintf("m%02d", i), Kind: storage.OutboxMail, Target: "mailto:" + to,
			Payload: string(payload), QueuedAt: now, NextAttemptAt: now})
	}
	if err := st.QueueOutbox(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	flags := []string{"--smtp-host", "127.0.0.1", "--smtp-port", port, "--smtp-tls", "none", "--mail-from", "id@example.com"}
	first := startOutboxServe(t, bin, data, flags...)
	select {
	case <-sink.held:
	case <-time.After(2 * time.Minute):
		t.Fatal("no mail reached the relay")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	sink.mu.Lock()
	sink.hold = false
	before := len(sink.got)
	sink.mu.Unlock()
	close(sink.release)
	if before >= total {
		t.Fatalf("%d delivered before the kill, want fewer than %d", before, total)
	}

	second := startOutboxServe(t, bin, data, flags...)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		sink.mu.Lock()
		n := len(sink.got)
		sink.mu.Unlock()
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered after the restart", n, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = second.Process.Signal(syscall.SIGTERM)
	_ = second.Wait()
	st, _, err = c.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if left, err := st.OutboxMessages(ctx, "", "", total); err != nil || len(left) != 0 {
		t.Fatalf("%d messages left in the outbox (%v)", len(left), err)
	}
	t.Logf("%d delivered before the kill", before)
}
