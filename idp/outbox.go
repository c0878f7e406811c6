package idp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keystep/keystep/login/admin"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/login/mail"
	"github.com/keystep/keystep/storage"
)

// OutboxConfig tunes the outbox worker (DeliverOutbox); zero values are the
// defaults.
type OutboxConfig struct {
	// AllowPrivate lets notifications go to private, link-local and
	// loopback addresses (`keystep serve --outbox-allow-private`): off, a
	// client's URI cannot make Keystep reach into its own network (SSRF).
	// Loopback is also allowed when the issuer itself is loopback (local
	// development).
	AllowPrivate bool
	// Timeout bounds one delivery attempt (5 s).
	Timeout time.Duration
	// GiveUpAfter is how long after it was queued a message is retried
	// before it is given up (24 h).
	GiveUpAfter time.Duration
	// MinBackoff and MaxBackoff bound the wait before a retry: it doubles
	// with each attempt from MinBackoff (10 s) up to MaxBackoff (30 min),
	// and a random part of it (jitter) spreads retries out.
	MinBackoff, MaxBackoff time.Duration
	// Lease is how long a claimed message is a worker's before another
	// may take it (1 min); it must exceed Timeout.
	Lease time.Duration
	// Poll is how often an idle worker looks for due messages (1 s).
	Poll time.Duration
}

func (c OutboxConfig) withDefaults() OutboxConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeout, 5*time.Second)
	def(&c.GiveUpAfter, 24*time.Hour)
	def(&c.MinBackoff, 10*time.Second)
	def(&c.MaxBackoff, 30*time.Minute)
	def(&c.Lease, time.Minute)
	def(&c.Poll, time.Second)
	return c
}

func (c OutboxConfig) validate() error {
	var errs []error
	if c.Timeout < 0 || c.GiveUpAfter < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.Lease < 0 || c.Poll < 0 {
		errs = append(errs, errors.New("outbox: durations must not be negative"))
	}
	if d := c.withDefaults(); d.Lease <= d.Timeout {
		errs = append(errs, fmt.Errorf("outbox: lease %s must be longer than the delivery timeout %s", d.Lease, d.Timeout))
	}
	return errors.Join(errs...)
}

// givenUpKept is how long a given-up message stays for the console's
// Retry before the cleanup deletes it.
const givenUpKept = 30 * 24 * time.Hour

// sweepGivenUp deletes the messages given up more than givenUpKept ago.
func (s *Server) sweepGivenUp(ctx context.Context, now time.Time) (int, error) {
	return s.cfg.Store.DeleteGivenUpOutbox(ctx, now.Add(-givenUpKept))
}

// outboxBatch is how many messages one pass claims, and delivers at once.
const outboxBatch = 16

// logoutTokenTTL bounds a logout token's life: it is signed at each attempt,
// so it only has to outlive the request (OIDC Back-Channel Logout 1.0 §2.4
// recommends a short one).
const logoutTokenTTL = 2 * time.Minute

// backchannelLogoutEvent is the events member of a logout token (§2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// outbox delivers the outbox's messages.
type outbox struct {
	cfg    OutboxConfig
	store  storage.Store
	keys   *keyring
	issuer string
	now    func() time.Time
	owner  string // this instance's name on its leases
	http   *http.Client
	mail   mail.Sender // nil: email is not set up
	audit  func(context.Context, storage.AuditEvent) error
	log    func(ctx context.Context, msg string, args ...any)
}

func newOutbox(cfg OutboxConfig, s *Server) (*outbox, error) {
	owner, err := factor.NewToken()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, _ := url.Parse(s.cfg.Issuer)
	return &outbox{
		cfg: cfg, store: s.cfg.Store, keys: s.keys, issuer: s.cfg.Issuer, now: s.cfg.Now, owner: owner[:16],
		http: deliveryClient(cfg, isLoopbackHost(u.Hostname())),
		mail: s.cfg.Mail, audit: s.audit.Record, log: s.log.WarnContext,
	}, nil
}

// DeliverOutbox delivers the outbox's messages until ctx ends: `keystep
// serve` runs it next to Maintain, on every instance (each message is
// delivered by the one that claims it).
func (s *Server) DeliverOutbox(ctx context.Context) {
	t := time.NewTicker(s.outbox.cfg.Poll)
	defer t.Stop()
	for {
		n, err := s.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "outbox delivery failed", "err", err)
		}
		if n == outboxBatch && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverDue claims the messages due now (a batch) and delivers them, and
// returns how many it claimed. DeliverOutbox calls it in a loop; tests
// call it with a fixed clock.
func (s *Server) DeliverDue(ctx context.Context) (int, error) {
	o := s.outbox
	msgs, err := o.store.ClaimOutbox(ctx, o.owner, o.now(), o.cfg.Lease, outboxBatch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		wg.Go(func() { errs[i] = o.deliver(ctx, m) })
	}
	wg.Wait()
	return len(msgs), errors.Join(errs...)
}

// deliver makes one attempt at m and records its outcome: delivered
// (deleted), due again after a backoff, or given up.
func (o *outbox) deliver(ctx context.Context, m storage.OutboxMessage) error {
	if due, ok := awaitingPoll(m, o.now()); ok {
		return o.store.RetryOutbox(ctx, m.ID, o.owner, due, "")
	}
	err := o.attempt(ctx, m)
	if errors.Is(err, errDropped) {
		o.log(ctx, "outbox message dropped", "id", m.ID, "kind", string(m.Kind), "client_id", m.ClientID, "err", err)
		return o.store.FinishOutbox(ctx, m.ID)
	}
	if err == nil {
		return o.store.FinishOutbox(ctx, m.ID)
	}
	var perm permanentError
	now := o.now()
	next := now.Add(o.backoff(m.Attempts))
	if errors.As(err, &perm) || next.After(m.QueuedAt.Add(o.cfg.GiveUpAfter)) {
		if ferr := o.store.FailOutbox(ctx, m.ID, o.owner, err.Error()); ferr != nil {
			return ferr
		}
		o.log(ctx, "outbox message given up", "id", m.ID, "kind", string(m.Kind), "client_id", m.ClientID, "attempts", m.Attempts, "err", err)
		var n storage.LogoutNotice
		_ = json.Unmarshal([]byte(m.Payload), &n)
		return o.audit(ctx, storage.AuditEvent{Type: storage.EventOutboxGaveUp, ClientID: m.ClientID, UserID: n.Subject,
			Outcome: "failure", Reason: err.Error(), Details: map[string]string{
				"id": m.ID, "kind": string(m.Kind), "target": m.Target, "attempts": strconv.Itoa(m.Attempts)}})
	}
	o.log(ctx, "outbox delivery failed; will retry", "id", m.ID, "client_id", m.ClientID, "attempts", m.Attempts, "retry_at", next, "err", err)
	return o.store.RetryOutbox(ctx, m.ID, o.owner, next, err.Error())
}

// backoff is the wait after the attempts-th failed attempt: MinBackoff
// doubled per attempt, at most MaxBackoff, of which the upper half is
// random ("equal jitter"), so receivers coming back are not hit by every
// instance's retries at once.
func (o *outbox) backoff(attempts int) time.Duration {
	d := o.cfg.MinBackoff
	for i := 1; i < attempts && d < o.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.cfg.MaxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	j, err := rand.Int(rand.Reader, big.NewInt(int64(half)))
	if err != nil {
		return d
	}
	return half + time.Duration(j.Int64())
}

// permanentError is a failure no retry can fix (a target Keystep must not
// call, a client deleted): the message is given up at once.
type permanentError struct{ error }

// attempt sends m once.
func (o *outbox) attempt(ctx context.Context, m storage.OutboxMessage) error {
	switch m.Kind {
	case storage.OutboxBackchannelLogout:
		tok, target, err := o.logoutToken(ctx, m)
		if err != nil {
			return err
		}
		return o.post(ctx, target, url.Values{"logout_token": {tok}})
	case storage.OutboxSSFPush:
		return o.pushSET(ctx, m)
	case storage.OutboxMail:
		return o.sendMail(ctx, m)
	case storage.OutboxSSFPoll:
		// Due only once expired (awaitingPoll): never acknowledged.
		return permanentError{fmt.Errorf("not acknowledged by a poll within %s", admin.PollExpiry)}
	default:
		return permanentError{fmt.Errorf("unknown message kind %q", m.Kind)}
	}
}

// sendMail sends an OutboxMail message with the configured sender, within
// half the lease (an SMTP exchange takes longer than an HTTP POST, and
// must end before another instance may claim the message). Not over the
// SSRF-guarded client: the relay is the operator's own.
func (o *outbox) sendMail(ctx context.Context, m storage.OutboxMessage) error {
	if o.mail == nil {
		return permanentError{errors.New("email is not set up (no --smtp-host or --mail-dir)")}
	}
	var p mail.Queued
	if err := json.Unmarshal([]byte(m.Payload), &p); err != nil {
		return permanentError{fmt.Errorf("corrupt payload: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Lease/2)
	defer cancel()
	err := o.mail.Send(ctx, p.Message)
	if errors.Is(err, mail.ErrPermanent) {
		return permanentError{err}
	}
	return err
}

// logoutToken signs m's logout token (OIDC Back-Channel Logout 1.0 §2.4)
// now, with the algorithm the client's ID tokens use, and says where it
// goes: the client's backchannel_logout_uri as registered now (an admin
// may have corrected it since the message was queued).
func (o *outbox) logoutToken(ctx context.Context, m storage.OutboxMessage) (string, string, error) {
	var n storage.LogoutNotice
	if err := json.Unmarshal([]byte(m.Payload), &n); err != nil {
		return "", "", permanentError{fmt.Errorf("corrupt payload: %w", err)}
	}
	c, err := o.store.ClientByID(ctx, m.ClientID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", "", permanentError{errors.New("client deleted")}
	}
	if err != nil {
		return "", "", err
	}
	if c.BackchannelLogoutURI == "" {
		return "", "", permanentError{errors.New("the client no longer has a backchannel_logout_uri")}
	}
	alg := c.IDTokenAlg
	if alg == "" {
		alg = "RS256" // OIDC Core §15.1, as for its ID tokens
	}
	now := o.now()
	claims := map[string]any{
		"iss": o.issuer, "aud": c.ID, "iat": now.Unix(), "exp": now.Add(logoutTokenTTL).Unix(), "jti": n.JTI,
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
		"sub":    n.Subject,
	}
	if n.SID != "" {
		claims["sid"] = n.SID
	} else if c.BackchannelLogoutSessionRequired {
		return "", "", permanentError{errors.New("the client requires sid and the session is unknown")}
	}
	tok, err := o.keys.sign(ctx, alg, "logout+jwt", claims)
	return tok, c.BackchannelLogoutURI, err
}

// post POSTs form to target: 200 and 204 are delivered (§2.8), anything
// else (a redirect included: none is followed) is a failure to retry.
func (o *outbox) post(ctx context.Context, target string, form url.Values) error {
	if err := checkTarget(target); err != nil {
		return permanentError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return permanentError{err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := o.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s answered %s", target, resp.Status)
	}
	return nil
}

// checkTarget allows https URLs, and http ones only to a loopback host
// (development); where they may connect is checked at dial time
// (deliveryClient).
func checkTarget(target string) error {
	u, err := url.Parse(target)
	switch {
	case err != nil || u.Host == "":
		return fmt.Errorf("target %q is not a URL", target)
	case u.User != nil:
		return fmt.Errorf("target %q has user info", target)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	default:
		return fmt.Errorf("target %q: only https (http for loopback hosts only)", target)
	}
}

// deliveryClient is the HTTP client of the outbox: no proxy, no redirects
// followed, and a dialer that refuses, on the address it is about to
// connect to (after DNS, so a name cannot resolve around it), every
// private, link-local, loopback, multicast or unspecified address unless
// allowPrivate — loopback alone is allowed when the issuer is loopback.
func deliveryClient(cfg OutboxConfig, issuerLoopback bool) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		return allowedAddress(address, cfg.AllowPrivate, issuerLoopback)
	}}
	return &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			DialContext: dialer.DialContext, ForceAttemptHTTP2: true, MaxIdleConns: 64, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: cfg.Timeout, ResponseHeaderTimeout: cfg.Timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// errForbiddenAddress is the dialer's refusal.
var errForbiddenAddress = errors.New("address not allowed for notifications (private, loopback or link-local; see --outbox-allow-private)")

func allowedAddress(address string, allowPrivate, allowLoopback bool) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	ip = ip.Unmap()
	if allowPrivate {
		return nil
	}
	// An IPv6 address that carries an IPv4 one (NAT64, 6to4, IPv4-
	// compatible) reaches that IPv4 host: its rules apply.
	if v4, ok := embeddedIPv4(ip); ok {
		ip = v4
	}
	switch {
	case ip.IsLoopback():
		if allowLoopback {
			return nil
		}
	case ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(),
		ip.IsMulticast(), ip.IsUnspecified(), slices.ContainsFunc(specialUse, func(p netip.Prefix) bool { return p.Contains(ip) }):
	default:
		return nil
	}
	return fmt.Errorf("%s: %w", ip, errForbiddenAddress)
}

// specialUse are the other special-purpose ranges a notification never
// goes to (RFC 6890 and successors): carrier-grade NAT (RFC 6598), IETF
// protocol assignments, benchmarking, reserved and limited broadcast.
var specialUse = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/96"), // IPv4-compatible (deprecated), and :: itself
	// Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on
	// the operator's prefix length, and it is local by definition.
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// Prefixes of IPv6 addresses that embed an IPv4 address.
var (
	nat64Wellknown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056: bits 16–47
)

// embeddedIPv4 is the IPv4 address an IPv6 address of a translation or
// tunnelling prefix stands for.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64Wellknown.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
