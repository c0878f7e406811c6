package login

import (
	"testing"
	"time"
)

func TestHumanWait(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "a minute"},
		{time.Minute, "a minute"},
		{time.Minute + time.Second, "2 minutes"},
		{59 * time.Minute, "59 minutes"},
		{time.Hour, "an hour"},
		{24 * time.Hour, "24 hours"},
	} {
		if got := humanWait(tt.d); got != tt.want {
			t.Errorf("humanWait(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
