package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP collector in the test: it decodes each
// export request and keeps the spans' names and their service.
type otlpReceiver struct {
	mu       sync.Mutex
	paths    []string
	spans    []string
	services []string
	bad      []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paths = append(o.paths, r.Method+" "+r.URL.Path)
	body, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" || err != nil || len(body) == 0 {
		o.bad = append(o.bad, "content type "+ct)
	} else if err := proto.Unmarshal(body, &req); err != nil {
		o.bad = append(o.bad, err.Error())
	}
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				o.services = append(o.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, s.GetName())
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// serve --otlp-endpoint exports the server's spans to the collector over
// OTLP/HTTP (protobuf, at /v1/traces for a base URL): the request's server
// span and its storage spans, under the service name keystep, flushed
// when the server stops.
func TestServeExportsTracesOverOTLP(t *testing.T) {
	rcv := &otlpReceiver{}
	col := httptest.NewServer(rcv)
	defer col.Close()
	t.Setenv("OTEL_SERVICE_NAME", "")
	s := startLive(t, "--data", t.TempDir(), "--otlp-endpoint", col.URL)
	if code, _ := fetch(t, http.DefaultClient, s.url+"/.well-known/openid-configuration"); code != http.StatusOK {
		t.Fatalf("discovery: %d", code)
	}
	if code, _ := fetch(t, http.DefaultClient, s.url+"/login?id=secret-looking-query"); code == 0 {
		t.Fatal("no answer")
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d\nstderr: %s", code, s.stderr)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("bad export requests: %v", rcv.bad)
	}
	for _, p := range rcv.paths {
		if p != "POST /v1/traces" {
			t.Errorf("export to %s, want POST /v1/traces", p)
		}
	}
	joined := strings.Join(rcv.spans, "\n")
	for _, want := range []string{"GET /.well-known/openid-configuration", "GET /login", "sqlite"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q span exported; got:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "secret-looking-query") {
		t.Error("a query string is in a span name")
	}
	if len(rcv.services) == 0 || rcv.services[0] != "keystep" {
		t.Errorf("service.name %v, want keystep", rcv.services)
	}
}

// Without --otlp-endpoint nothing is exported (OTEL_EXPORTER_OTLP_ENDPOINT
// alone does not turn tracing on), and a bad endpoint is refused before
// anything starts.
func TestServeTracesOnlyWhenAsked(t *testing.T) {
	rcv := &otlpReceiver{}
	col := httptest.NewServer(rcv)
	defer col.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	s := startLive(t, "--data", t.TempDir())
	fetch(t, http.DefaultClient, s.url+"/.well-known/openid-configuration")
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	rcv.mu.Lock()
	if len(rcv.paths) != 0 {
		t.Errorf("exported without --otlp-endpoint: %v", rcv.paths)
	}
	rcv.mu.Unlock()

	for _, bad := range []string{"collector:4318", "ftp://collector", "http://user:pw@collector:4318", "http://collector:4318/?x=1"} {
		var stderr strings.Builder
		code := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--otlp-endpoint", bad}, strings.NewReader(""), io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "--otlp-endpoint") {
			t.Errorf("--otlp-endpoint %s: exit %d, %s", bad, code, stderr.String())
		}
	}
}
