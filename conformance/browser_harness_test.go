package conformance

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/conformance/chrome"
)

// The browser tests drive a real headless Chromium through the pages people
// see, with the harness of conformance/chrome (its Look checks each page as
// a person would use it). What only these tests need is here: the RP at
// https://rp.example answered inside the browser, requests held back, and
// confirm() dialogs answered.

// tab is Chromium (chrome.Browser) with the conformance RP.
type tab struct {
	*chrome.Browser
	t *testing.T

	mu      sync.Mutex
	rpLoads []string            // URLs the browser tried to load at the RP
	holds   map[string][]string // request URL prefix held back → URLs seen
	hold    time.Duration
	dialogs []string // messages of confirm() dialogs
	accept  bool     // answer to the next dialogs
}

func newTab(t *testing.T) *tab {
	t.Helper()
	return newTabIn(t, "")
}

// newTabIn is a tab of a browser set to the languages accept ("de-DE,de").
func newTabIn(t *testing.T, accept string) *tab {
	t.Helper()
	c := &tab{Browser: chrome.NewIn(t, accept), t: t, holds: map[string][]string{}, accept: true}
	if err := chromedp.Listen(c.Context(), c.event); err != nil {
		t.Fatal(err)
	}
	c.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		// The RP is https://rp.example, which does not exist: the browser's
		// request to it is answered here, and its URL recorded.
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
			{URLPattern: "https://rp.example/*"},
			{URLPattern: "*/login/*"},
		}})
		return err
	}))
	return c
}

// newPasskeyTab is a tab whose WebAuthn ceremonies go to virtual
// authenticators, with passkey autofill off (chrome.Browser.EnableWebAuthn).
func newPasskeyTab(t *testing.T) *tab {
	t.Helper()
	c := newTab(t)
	c.EnableWebAuthn()
	return c
}

// event runs in the tab's read loop, next to the Browser's: it records and
// returns at once, and anything that needs a command runs on its own
// goroutine.
func (c *tab) event(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := ev.(type) {
	case *fetch.EventRequestPaused:
		u := ev.Request.URL
		id := ev.RequestID
		ctx := c.Context()
		if strings.HasPrefix(u, "https://rp.example/") {
			if ev.ResourceType != network.ResourceTypeDocument { // its favicon
				go func() {
					_, _ = chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: id, ResponseCode: http.StatusNoContent})
				}()
				return
			}
			c.rpLoads = append(c.rpLoads, u)
			go func() {
				_, _ = chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
					RequestID: id, ResponseCode: 200,
					ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
					Body:            []byte("<!doctype html><title>Acme Payroll</title><h1>Back at the app</h1>"),
				})
			}()
			return
		}
		hold := time.Duration(0)
		if ev.Request.Method == http.MethodPost {
			for prefix := range c.holds {
				if strings.HasPrefix(u, prefix) {
					c.holds[prefix] = append(c.holds[prefix], u)
					hold = c.hold
				}
			}
		}
		go func() {
			time.Sleep(hold)
			// A request the page gave up on can no longer continue; that is fine.
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: id})
		}()
	case *cdppage.EventJavascriptDialogOpening:
		c.dialogs = append(c.dialogs, ev.Message)
		accept := c.accept
		ctx := c.Context()
		go func() {
			_, _ = chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: accept})
		}()
	}
}

// waitHeld waits until a POST to a URL starting with prefix is held back
// (see holds), and fails the test if none comes within chrome.ActionTimeout.
func (c *tab) waitHeld(prefix string) {
	c.t.Helper()
	deadline := time.Now().Add(chrome.ActionTimeout)
	for {
		c.mu.Lock()
		n := len(c.holds[prefix])
		c.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no request to %s within %s; at %s", prefix, chrome.ActionTimeout, c.Location())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rpCode expects the browser to be at the RP's redirect URI and returns the
// code, checking state and the absence of an error.
func (c *tab) rpCode(r *rp, a authRequest) string {
	c.t.Helper()
	loc := c.Location()
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, rpRedirect) {
		c.t.Fatalf("expected the browser at the app (%s), it is at %s:\n%s", rpRedirect, loc, chrome.Eval[string](c.Browser, "document.body.innerText"))
	}
	c.mu.Lock()
	seen := slices.Contains(c.rpLoads, loc)
	loads := slices.Clone(c.rpLoads)
	c.mu.Unlock()
	if !seen {
		c.t.Fatalf("the app's page %s was not loaded through the network; loads: %q", loc, loads)
	}
	return r.code(page{status: http.StatusSeeOther, redirect: u}, a)
}
