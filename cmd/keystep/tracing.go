package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// otlpTracesPath is where an OTLP/HTTP collector takes traces.
const otlpTracesPath = "/v1/traces"

// otlpEndpoint checks --otlp-endpoint: an http or https URL. One without a
// path is the collector's base URL and gets /v1/traces, as
// OTEL_EXPORTER_OTLP_ENDPOINT does; one with a path is used as it is.
func otlpEndpoint(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", usageError{fmt.Sprintf("--otlp-endpoint %q: want an http(s)://HOST:PORT[/PATH] URL of an OTLP/HTTP collector (credentials go in OTEL_EXPORTER_OTLP_HEADERS)", raw)}
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = otlpTracesPath
	}
	return u.String(), nil
}

// newTracing builds the tracer provider that exports the server's spans
// to the OTLP/HTTP collector at endpoint (checked by otlpEndpoint), in
// batches. The exporter honours the standard OTEL_EXPORTER_OTLP_* variables
// (headers, timeout, compression, certificates) but for the endpoint, which
// the flag names; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the
// service, "keystep" by default, and OTEL_TRACES_SAMPLER samples (default:
// every trace). shutdown flushes what is queued.
func newTracing(ctx context.Context, endpoint string, log *slog.Logger) (tp *sdktrace.TracerProvider, shutdown func(), err error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	attrs := []resource.Option{resource.WithAttributes(semconv.ServiceName("keystep"))}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(bi.Main.Version)))
	}
	// Later options win: the environment's service name over ours.
	res, err := resource.New(ctx, append(attrs, resource.WithTelemetrySDK(), resource.WithFromEnv())...)
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("traces: the last spans were not exported", "err", err)
		}
	}, nil
}
