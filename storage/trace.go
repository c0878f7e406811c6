package storage

import "context"

// StatementTracer is told of every SQL statement a backend runs, so that
// the server can trace storage calls without the storage packages
// importing a tracing library. It sees the operation and the database
// system only: never the statement's text or its arguments, which hold
// hashes of codes and tokens.
type StatementTracer interface {
	// Statement starts a span for one statement. system is the database
	// (OpenTelemetry's db.system.name: "sqlite", "postgresql"), operation
	// the statement's first keyword ("SELECT", "INSERT", …). The returned
	// end is called once, with the statement's error.
	Statement(ctx context.Context, system, operation string) (end func(err error))
}

// Traced is a store that can report its statements to a StatementTracer
// (both SQL backends are). TraceStatements applies to every statement run
// after it returns; nil stops the reports.
type Traced interface {
	TraceStatements(t StatementTracer)
}
