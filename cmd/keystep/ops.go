package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keystep/keystep/idp"
)

// defaultOpsAddr is where serve answers /metrics, /healthz and /readyz:
// loopback, for a local Prometheus, the service manager or a sidecar.
const defaultOpsAddr = "127.0.0.1:9090"

// opsSettings are serve's flags for the operators' endpoints.
type opsSettings struct {
	addr string // "" when the ops listener is off
	// pprof mounts Go's profiler on the ops listener; pprofAddr is the
	// deprecated --pprof HOST:PORT, a listener of its own.
	pprof     bool
	pprofAddr string
	public    bool // --public-metrics: the public listener serves them too
}

// parseOps checks --ops-addr, --pprof and --public-metrics.
//
// --pprof on serves the profiler at /debug/pprof/ on the ops listener,
// which must then be on loopback. --pprof HOST:PORT, the flag's meaning
// before the ops listener, still works (a loopback listener of its own)
// and is deprecated.
func parseOps(opsAddr, pprofFlag string, public bool) (opsSettings, error) {
	s := opsSettings{addr: opsAddr, public: public}
	if opsAddr == "off" {
		s.addr = ""
	}
	if s.addr != "" {
		if _, _, err := net.SplitHostPort(s.addr); err != nil {
			return s, usageError{fmt.Sprintf("--ops-addr %q: want HOST:PORT, or off", opsAddr)}
		}
	}
	switch pprofFlag {
	case "", "off", "false":
	case "on", "true":
		if s.addr == "" {
			return s, usageError{"--pprof on: the profiler is served on --ops-addr, which is off"}
		}
		if !loopbackAddr(s.addr) {
			return s, usageError{fmt.Sprintf("--pprof on with --ops-addr %q: the profiler must not be reachable from the network; put --ops-addr on loopback", s.addr)}
		}
		s.pprof = true
	default:
		if !loopbackAddr(pprofFlag) {
			return s, usageError{fmt.Sprintf("--pprof %q: want on (served on --ops-addr) or a loopback HOST:PORT; the profiler must not be reachable from the network", pprofFlag)}
		}
		s.pprofAddr = pprofFlag
	}
	return s, nil
}

// loopbackAddr reports whether HOST:PORT is on loopback.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// opsHandler is the ops listener's handler: the server's health and
// metrics, and the profiler when asked.
func opsHandler(srv *idp.Server, pprof bool) http.Handler {
	if !pprof {
		return srv.OpsHandler()
	}
	mux := pprofMux()
	mux.Handle("/", srv.OpsHandler())
	return mux
}

// publicWithOps serves the ops endpoints on the public handler as well
// (--public-metrics, and the throwaway demo).
func publicWithOps(srv *idp.Server) http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics"} {
		mux.Handle(p, srv.OpsHandler())
	}
	mux.Handle("/", srv)
	return mux
}

// hangups delivers SIGHUP while serve runs; tests replace it.
var hangups = func() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// shutdownGrace is how long serve waits for in-flight requests after it
// is told to stop (SIGTERM, SIGINT).
const shutdownGrace = 15 * time.Second

// listeners is what serve runs once the server is built.
type listeners struct {
	public *http.Server
	ln     net.Listener
	certs  *certReloader // nil: plain http (or TLS at a proxy)
	opsLn  net.Listener  // nil: off
	ops    opsSettings
	srv    *idp.Server
	audit  *auditOut // nil: no --audit-log
	issuer string
}

// serveListeners serves until ctx ends, then stops accepting and waits for
// the requests in flight (up to shutdownGrace) before it returns. SIGHUP
// reloads the certificate and reopens the audit log.
func serveListeners(ctx context.Context, l listeners, log *slog.Logger, stdout io.Writer) error {
	var pl net.Listener // the deprecated --pprof HOST:PORT
	if l.ops.pprofAddr != "" {
		var err error
		if pl, err = net.Listen("tcp", l.ops.pprofAddr); err != nil {
			return fmt.Errorf("--pprof: %w", err)
		}
	}
	hup, stopHup := hangups()
	defer stopHup()
	bg, stopBg := context.WithCancel(ctx)
	defer stopBg()
	go func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the certificate and reopening the audit log")
				if l.certs != nil {
					if err := l.certs.reload(); err != nil {
						log.Error("tls certificate not reloaded; serving the previous one", "err", err)
					}
				}
				if l.audit != nil {
					if err := l.audit.reopen(); err != nil {
						log.Error("audit log not reopened", "err", err)
					}
				}
			}
		}
	}()

	servers := []*http.Server{l.public}
	errc := make(chan error, 3)
	if l.certs != nil {
		l.public.TLSConfig = serverTLSConfig(l.certs)
		go l.certs.watch(bg, certPollEvery)
		go func() { errc <- l.public.ServeTLS(l.ln, "", "") }()
	} else {
		go func() { errc <- l.public.Serve(l.ln) }()
	}
	if l.opsLn != nil {
		opsSrv := &http.Server{Handler: opsHandler(l.srv, l.ops.pprof), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		servers = append(servers, opsSrv)
		go func() { errc <- opsSrv.Serve(l.opsLn) }()
		log.Info("operations endpoints serving", "addr", l.opsLn.Addr().String(), "pprof", l.ops.pprof)
		fmt.Fprintf(stdout, "Operations endpoints (/metrics, /healthz, /readyz) on http://%s\n", l.opsLn.Addr())
	}
	if pl != nil {
		log.Warn("--pprof HOST:PORT is deprecated: use --pprof on, which serves the profiler on the loopback --ops-addr")
		ps := &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, ps)
		go func() { errc <- ps.Serve(pl) }()
		log.Info("profiler serving", "addr", pl.Addr().String())
	}
	log.Info("keystep serving", "addr", l.ln.Addr().String(), "issuer", l.issuer, "tls", l.certs != nil, "discovery", l.issuer+"/.well-known/openid-configuration")
	fmt.Fprintf(stdout, "Keystep is serving %s\n", l.issuer)

	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	log.Info("shutting down: waiting for requests in flight", "grace", shutdownGrace)
	var errs []error
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		errs = append(errs, serveErr)
	}
	for _, s := range servers {
		if err := s.Shutdown(shutdown); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
