package idp

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keystep/keystep/storage"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	grants   *prometheus.CounterVec
	signins  *prometheus.CounterVec
	audit    *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_http_requests_total", Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		latency:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keystep_http_request_duration_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
		grants:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_token_grants_total", Help: "Token endpoint requests by grant type and outcome."}, []string{"grant_type", "outcome"}),
		signins:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_signins_total", Help: "Sign-in flows by outcome."}, []string{"outcome"}),
		audit:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_audit_events_total", Help: "Audit events by type and outcome."}, []string{"type", "outcome"}),
	}
	reg.MustRegister(m.requests, m.latency, m.grants, m.signins, m.audit)
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// routes are the label values; anything else is "other", so a scan of
// random paths cannot blow up the label set.
var routes = []string{"/authorize/callback", "/authorize", "/oauth/token", "/oauth/introspect", "/userinfo", "/revoke", "/end_session", "/keys", "/.well-known/openid-configuration", "/.well-known/ssf-configuration", "/ssf", "/login", "/account", "/setup", "/static", "/healthz", "/readyz", "/metrics"}

func routeOf(path string) string {
	for _, r := range routes {
		if path == r || strings.HasPrefix(path, r+"/") {
			return r
		}
	}
	return "other"
}

func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := routeOf(r.URL.Path)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

func (m *metrics) grant(grantType string, status int) {
	switch grantType {
	case "authorization_code", "refresh_token", "client_credentials":
	default:
		grantType = "other"
	}
	outcome := "success"
	if status >= 400 {
		outcome = "error"
	}
	m.grants.WithLabelValues(grantType, outcome).Inc()
}

func (m *metrics) audited(e storage.AuditEvent) {
	m.audit.WithLabelValues(string(e.Type), e.Outcome).Inc()
	switch e.Type {
	case storage.EventLoginCompleted, storage.EventLoginFailed:
		m.signins.WithLabelValues(e.Outcome).Inc()
	case storage.EventLoginPassword:
		if e.Outcome == "failure" {
			m.signins.WithLabelValues("bad_credentials").Inc()
		}
	}
}
