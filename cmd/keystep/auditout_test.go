package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keystep/keystep/storage"
)

// auditLines reads a JSON-lines audit log, failing on a line that is not
// JSON, and returns the lines and their sequence numbers.
func auditLines(t *testing.T, data []byte) ([]string, []int64) {
	t.Helper()
	var lines []string
	var seqs []int64
	for l := range strings.Lines(string(data)) {
		var e auditJSON
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		lines, seqs = append(lines, strings.TrimSpace(l)), append(seqs, e.Seq)
	}
	return lines, seqs
}

// --audit-log writes every audit event of a sign-in, as `audit export`
// shows it, in order; after logrotate moves the file and SIGHUP, the new
// file gets the next events.
func TestServeAuditLogFollowsTheChainAndReopensOnSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 1)
	prev := hangups
	hangups = func() (<-chan os.Signal, func()) { return hup, func() {} }
	t.Cleanup(func() { hangups = prev })

	d := t.TempDir()
	createUser(t, d, "alice")
	rp := createClient(t, d, "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	logFile := filepath.Join(t.TempDir(), "audit.jsonl")
	s := startLive(t, "--data", d, "--audit-log", logFile)
	signInRP(t, s.url, http.DefaultClient, rp.ID, rp.Secret)

	// What the database holds since the server started, line for line.
	exported := func() []string {
		lines, _ := auditLines(t, []byte(mustKeystep(t, "", "audit", "export", "--data", d).stdout))
		return lines
	}
	waitLines := func(path string, n int) []byte {
		t.Helper()
		for range 200 {
			b, _ := os.ReadFile(path)
			if bytes.Count(b, []byte("\n")) >= n {
				return b
			}
			time.Sleep(10 * time.Millisecond)
		}
		b, _ := os.ReadFile(path)
		t.Fatalf("%s has fewer than %d lines:\n%s", path, n, b)
		return nil
	}
	all := exported()
	var streamed []string
	for _, l := range all {
		var e auditJSON
		json.Unmarshal([]byte(l), &e)
		if e.ActorID != "cli" { // the CLI's rows were written before serve
			streamed = append(streamed, l)
		}
	}
	if len(streamed) < 2 {
		t.Fatalf("a sign-in wrote %d audit events:\n%s", len(streamed), strings.Join(all, "\n"))
	}
	got, seqs := auditLines(t, waitLines(logFile, len(streamed)))
	if strings.Join(got, "\n") != strings.Join(streamed, "\n") {
		t.Errorf("audit log:\n%s\nwant (audit export):\n%s", strings.Join(got, "\n"), strings.Join(streamed, "\n"))
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Errorf("sequence %v not in order", seqs)
		}
	}

	// logrotate: move, SIGHUP, and the next events go to a new file.
	rotated := logFile + ".1"
	if err := os.Rename(logFile, rotated); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	for !strings.Contains(s.stderr.String(), "SIGHUP") {
		time.Sleep(10 * time.Millisecond)
	}
	signInRP(t, s.url, http.DefaultClient, rp.ID, rp.Secret)
	after := exported()[len(all):]
	gotNew, _ := auditLines(t, waitLines(logFile, len(after)))
	if strings.Join(gotNew, "\n") != strings.Join(after, "\n") {
		t.Errorf("after SIGHUP the new file has:\n%s\nwant:\n%s", strings.Join(gotNew, "\n"), strings.Join(after, "\n"))
	}
	old, _ := os.ReadFile(rotated)
	if oldLines, _ := auditLines(t, old); len(oldLines) != len(streamed) {
		t.Errorf("the rotated file grew to %d lines after SIGHUP, want %d", len(oldLines), len(streamed))
	}
}

// Events handed over out of order (requests committing together) are
// written in sequence order; a number that never comes is given up on.
func TestAuditOutOrdersEvents(t *testing.T) {
	prev := auditOutWait
	auditOutWait = 50 * time.Millisecond
	t.Cleanup(func() { auditOutWait = prev })
	var buf syncBuffer
	a := &auditOut{path: "-", stdout: &buf, log: slog.New(slog.DiscardHandler), next: 5, pending: map[int64]storage.AuditEvent{}}
	if err := a.reopen(); err != nil {
		t.Fatal(err)
	}
	ev := func(seq int64) storage.AuditEvent {
		return storage.AuditEvent{Seq: seq, Type: storage.EventAdminUserCreated, Outcome: "success", Hash: "k1:x"}
	}
	a.event(ev(7))
	a.event(ev(5))
	if _, seqs := auditLines(t, []byte(buf.String())); len(seqs) != 1 || seqs[0] != 5 {
		t.Fatalf("wrote %v before 6, want [5]", seqs)
	}
	a.event(ev(6))
	a.event(ev(9)) // 8 was written by another process
	if _, seqs := auditLines(t, []byte(buf.String())); len(seqs) != 3 {
		t.Fatalf("wrote %v, want [5 6 7]", seqs)
	}
	time.Sleep(200 * time.Millisecond)
	a.event(ev(10))
	if _, seqs := auditLines(t, []byte(buf.String())); len(seqs) != 5 || seqs[3] != 9 || seqs[4] != 10 {
		t.Fatalf("wrote %v, want [5 6 7 9 10]", seqs)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
