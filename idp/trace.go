package idp

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/keystep/keystep/storage"
)

// TracerName is the instrumentation scope of every span Keystep starts.
const TracerName = "github.com/keystep/keystep"

// tracerOf is the tracer of tp; nil is OpenTelemetry's no-op.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(TracerName, trace.WithSchemaURL(semconv.SchemaURL))
}

// httpMethods are the methods a span names as they are (the HTTP semantic
// conventions' known methods); any other is "_OTHER", so a client cannot
// put what it likes in an attribute.
var httpMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true, http.MethodPatch: true}

// traceHTTP starts a server span for each request, with the stable HTTP
// semantic conventions' attributes. It records the path but never the
// query string (codes, tokens and state travel there), and the issuer's
// host and scheme rather than the client's Host header. A traceparent
// header from the client is not followed: the sign-in pages face the
// world, and a trace is Keystep's own.
func traceHTTP(t trace.Tracer, issuer string, next http.Handler) http.Handler {
	var base []attribute.KeyValue
	if u, err := url.Parse(issuer); err == nil {
		base = append(base, semconv.URLScheme(u.Scheme), semconv.ServerAddress(u.Hostname()))
		port := u.Port()
		if port == "" && u.Scheme == "https" {
			port = "443"
		} else if port == "" {
			port = "80"
		}
		if p, err := strconv.Atoi(port); err == nil {
			base = append(base, semconv.ServerPort(p))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if !httpMethods[method] {
			method = "_OTHER"
		}
		name := method
		attrs := append(base[:len(base):len(base)], semconv.HTTPRequestMethodKey.String(method), semconv.URLPath(r.URL.Path))
		if route := routeOf(r.URL.Path); route != "other" {
			name += " " + route
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		ctx, span := t.Start(r.Context(), name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		span.SetAttributes(semconv.HTTPResponseStatusCode(rec.status))
		// Server spans: a 5xx is the server's error, a 4xx the client's.
		if rec.status >= 500 {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(rec.status)))
			span.SetStatus(codes.Error, "")
		}
	})
}

// statementTracer traces storage statements (storage.StatementTracer).
type statementTracer struct{ t trace.Tracer }

// Statement starts a client span named after the database system: the
// database conventions name a span by its operation only with a target
// (a table), and the statement's text stays out of the trace.
func (s statementTracer) Statement(ctx context.Context, system, operation string) func(error) {
	attrs := []attribute.KeyValue{semconv.DBSystemNameKey.String(system)}
	if operation != "" {
		attrs = append(attrs, semconv.DBOperationName(operation))
	}
	_, span := s.t.Start(ctx, system, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, "")
			span.SetAttributes(semconv.ErrorTypeOther)
		}
		span.End()
	}
}

var _ storage.StatementTracer = statementTracer{}
