package storage

import (
	"math"
	"time"
)

// Every backend stores times as int64 unix nanoseconds, so a row written by
// one reads back identically from another and the audit hash, computed over
// times, verifies everywhere. These two functions are that encoding.

// Bounds of int64 nanoseconds, about the years 1678 and 2262.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// UnixNanos encodes t; the zero time is 0. Times beyond what int64
// nanoseconds hold are clamped (an expiry in 9999 stays far future).
func UnixNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// FromUnixNanos decodes UnixNanos as a UTC time; 0 gives the zero time.
func FromUnixNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
