package main

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/idp/details"
)

var (
	demoAppRE     = regexp.MustCompile(`Acme Payroll \(the app\)\s+(http://\S+)`)
	demoKeystepRE = regexp.MustCompile(`Keystep \(the provider\)\s+(http://\S+)`)
	demoDataRE    = regexp.MustCompile(`Data: (\S+) \(`)
)

// demoRun is a `keystep demo` running in the test.
type demoRun struct {
	app, issuer, data string
	stdout, stderr    *syncBuffer
	stop              func() int
}

// startDemo starts `keystep demo` on free loopback ports and waits until it
// prints its URLs.
func startDemo(t *testing.T, args ...string) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	d := &demoRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	done := make(chan int, 1)
	go func() {
		args := append([]string{"demo", "--addr", "127.0.0.1:0", "--rp-addr", "127.0.0.1:0"}, args...)
		done <- run(ctx, args, strings.NewReader(""), d.stdout, d.stderr)
	}()
	var once sync.Once
	var code int
	d.stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { d.stop() })
	deadline := time.After(30 * time.Second)
	for {
		out := d.stdout.String()
		if strings.Contains(out, "Press Ctrl+C") {
			d.app = demoAppRE.FindStringSubmatch(out)[1]
			d.issuer = demoKeystepRE.FindStringSubmatch(out)[1]
			d.data = demoDataRE.FindStringSubmatch(out)[1]
			return d
		}
		select {
		case code := <-done:
			t.Fatalf("demo exited %d before serving\nstdout: %s\nstderr: %s", code, d.stdout, d.stderr)
		case <-deadline:
			t.Fatalf("demo did not start\nstdout: %s\nstderr: %s", d.stdout, d.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// signInAsDemo walks a browser from the app's sign-in link through Keystep
// with the printed credentials and back, and returns the dashboard and the
// browser.
func signInAsDemo(t *testing.T, d *demoRun) (string, *http.Client) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get(d.app + "/login")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), d.issuer+"/login") {
		t.Fatalf("the app's sign-in ended with %d at %s:\n%.2000s", resp.StatusCode, resp.Request.URL, body)
	}
	m := regexp.MustCompile(`name="id" value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sign-in form at %s:\n%.2000s", resp.Request.URL, body)
	}
	resp, err := c.PostForm(d.issuer+"/login/password", url.Values{
		"id": {html.UnescapeString(m[1])}, "username": {demoUsername}, "password": {demoPassword},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != d.app+"/dashboard" {
		t.Fatalf("signing in as %s ended with %d at %s:\n%.2000s", demoUsername, resp.StatusCode, resp.Request.URL, b)
	}
	return string(b), c
}

// `keystep demo` serves Keystep and Acme Payroll, the printed credentials
// sign in, a second start on the same data folder reuses the user and
// client, and cancelling stops both cleanly.
func TestDemoServesBothAndStops(t *testing.T) {
	data := t.TempDir()
	for i := range 2 {
		d := startDemo(t, "--data", data)
		if d.data != data {
			t.Errorf("start %d: data %q, want %q", i, d.data, data)
		}
		for _, u := range []string{d.issuer, d.app} {
			if !strings.HasPrefix(u, "http://localhost:") {
				t.Errorf("URL %q, want http://localhost:PORT (passkeys need a host name)", u)
			}
		}
		for _, u := range []string{d.issuer + "/healthz", d.issuer + "/.well-known/openid-configuration", d.app + "/", d.app + "/static/demo.css"} {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("start %d: GET %s: %s", i, u, resp.Status)
			}
		}
		if dash, _ := signInAsDemo(t, d); !strings.Contains(dash, "Hello, "+demoUsername) {
			t.Errorf("start %d: the dashboard does not greet %s:\n%.2000s", i, demoUsername, dash)
		}
		if code := d.stop(); code != 0 {
			t.Fatalf("start %d: exit %d after cancel\nstderr: %s", i, code, d.stderr)
		}
		for _, u := range []string{d.issuer + "/healthz", d.app + "/"} {
			if resp, err := http.Get(u); err == nil {
				resp.Body.Close()
				t.Errorf("start %d: %s still answers after stop", i, u)
			}
		}
	}
}

// `keystep demo` registers payment_initiation (the example payments
// policy) and Acme Payroll for it: paying the invoice pushes its
// authorization_details, and Keystep takes them and asks for the passkey
// the policy wants; the demo user has none yet, so the app comes back to
// the invoice saying so. Without the policy or the client's registration
// the push is refused and the app says the sign-in didn't start.
func TestDemoPaysInvoicesWithDetails(t *testing.T) {
	d := startDemo(t)
	resp, err := http.Get(d.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Types []string `json:"authorization_details_types_supported"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || !slices.Contains(disc.Types, details.PaymentInitiation) {
		t.Fatalf("discovery's authorization_details_types_supported %v (%v)", disc.Types, err)
	}
	_, c := signInAsDemo(t, d)
	resp, err = c.PostForm(d.app+"/invoice/pay", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Keystep first says why the payment can't be approved yet; its
	// "Go back" takes the person to the app with the error.
	id := regexp.MustCompile(`<form method="post" action="/login/enroll/back"[^>]*>\s*<input type="hidden" name="id" value="([^"]*)">`).FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login" || id == nil {
		t.Fatalf("paying the invoice: want Keystep's out-of-reach page, got %d at %s:\n%.3000s", resp.StatusCode, resp.Request.URL, b)
	}
	resp, err = c.PostForm(d.issuer+"/login/enroll/back", url.Values{"id": {html.UnescapeString(string(id[1]))}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != d.app+"/invoice" ||
		!strings.Contains(string(b), "needs your passkey or security key") {
		t.Fatalf("paying the invoice ended with %d at %s:\n%.3000s", resp.StatusCode, resp.Request.URL, b)
	}
}

// Without --data the demo runs in a temporary folder and removes it.
func TestDemoTemporaryData(t *testing.T) {
	d := startDemo(t)
	if !strings.Contains(d.stdout.String(), "deleted when the demo stops") {
		t.Errorf("stdout does not say the data is temporary:\n%s", d.stdout)
	}
	if _, err := os.Stat(d.data); err != nil {
		t.Fatalf("data folder %s: %v", d.data, err)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit %d\nstderr: %s", code, d.stderr)
	}
	if _, err := os.Stat(d.data); !os.IsNotExist(err) {
		t.Errorf("temporary data folder %s left behind (err %v)", d.data, err)
	}
}

func TestDemoRefusesBadFlags(t *testing.T) {
	wantExit(t, keystep(t, "", "demo", "--nope"), 2, "demo:")
	wantExit(t, keystep(t, "", "demo", "extra"), 2, `unexpected argument "extra"`)
}
