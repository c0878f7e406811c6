package policy

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystep/keystep/storage"
)

// DefaultFollowEvery is how often an instance checks for a new active
// version: a version saved on one instance decides sign-ins on every other
// within this long.
const DefaultFollowEvery = 2 * time.Second

// Live is the policy an instance decides with: the active stored version,
// or the server's own policy (version 0) while none is stored or when the
// stored policy is read-only here. Current is one atomic load; Follow
// picks up versions saved elsewhere.
type Live struct {
	store    storage.Policies
	base     *Snapshot
	opt      Options
	readOnly bool
	log      *slog.Logger

	cur   atomic.Pointer[Snapshot]
	mu    sync.Mutex
	byNum map[int64]*Snapshot // compiled stored versions, a few
}

// NewLive starts at base; call Refresh to load the active stored version.
// With readOnly the stored versions are never read: base decides
// everything, for deployments whose policy is the --config file. store
// may be nil (the same as readOnly).
func NewLive(store storage.Policies, base *Snapshot, opt Options, readOnly bool, log *slog.Logger) *Live {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A stored version may name a client deleted since: that must not
	// stop it loading.
	opt.KnownClient = nil
	l := &Live{store: store, base: base, opt: opt, readOnly: readOnly || store == nil, log: log, byNum: map[int64]*Snapshot{}}
	l.cur.Store(base)
	return l
}

// Static is a Live that is always s.
func Static(s *Snapshot) *Live { return NewLive(nil, s, Options{}, true, nil) }

// Current is the active policy: what a new sign-in is decided under.
func (l *Live) Current() *Snapshot { return l.cur.Load() }

// ReadOnly reports that the stored policy is not used here, so editing it
// would change nothing: the console and the API refuse to.
func (l *Live) ReadOnly() bool { return l.readOnly }

// Options are the compile options of stored versions (KnownClient nil).
func (l *Live) Options() Options { return l.opt }

// At is version n, for a sign-in that began under it: it is decided under
// that version to the end. 0 is the server's own policy.
func (l *Live) At(ctx context.Context, n int64) (*Snapshot, error) {
	if cur := l.Current(); cur.Version == n {
		return cur, nil
	}
	if n == 0 || l.readOnly {
		return l.base, nil
	}
	l.mu.Lock()
	s, ok := l.byNum[n]
	l.mu.Unlock()
	if ok {
		return s, nil
	}
	v, err := l.store.PolicyVersionByNumber(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("policy version %d: %w", n, err)
	}
	s, err = l.compile(v)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byNum) >= 16 {
		for k := range l.byNum { // any but the active one
			if k != l.Current().Version {
				delete(l.byNum, k)
				break
			}
		}
	}
	l.byNum[n] = s
	return s, nil
}

func (l *Live) compile(v storage.PolicyVersion) (*Snapshot, error) {
	doc, err := Parse(v.Document)
	if err != nil {
		return nil, fmt.Errorf("policy version %d: %w", v.Number, err)
	}
	s, err := Compile(doc, l.opt)
	if err != nil {
		return nil, fmt.Errorf("policy version %d does not compile here: %w", v.Number, err)
	}
	s.Version = v.Number
	return s, nil
}

// Refresh makes the active stored version current. A version that does
// not compile on this instance (a locations file missing here) is an
// error, and the current policy stays.
func (l *Live) Refresh(ctx context.Context) error {
	if l.readOnly {
		return nil
	}
	n, err := l.store.ActivePolicyNumber(ctx)
	if err != nil {
		return err
	}
	if n == 0 || n == l.Current().Version {
		return nil
	}
	s, err := l.At(ctx, n)
	if err != nil {
		return err
	}
	for {
		old := l.cur.Load()
		if old.Version >= s.Version {
			return nil // a concurrent refresh got as far
		}
		if l.cur.CompareAndSwap(old, s) {
			l.log.InfoContext(ctx, "policy version active", "version", s.Version, "was", old.Version)
			return nil
		}
	}
}

// Follow refreshes every `every` (0: DefaultFollowEvery) until ctx ends.
func (l *Live) Follow(ctx context.Context, every time.Duration) {
	if l.readOnly {
		return
	}
	if every <= 0 {
		every = DefaultFollowEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		err := l.Refresh(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			l.log.ErrorContext(ctx, "policy refresh failed; deciding with the current version", "version", l.Current().Version, "err", err)
			failing = true
		case err == nil && failing:
			l.log.InfoContext(ctx, "policy refresh works again", "version", l.Current().Version)
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
