package sqlstore

import "testing"

func TestNumberedPlaceholders(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"a statement without placeholders stays as it is", `SELECT count(*) FROM users`, `SELECT count(*) FROM users`},
		{"placeholders are numbered in order", `UPDATE t SET a = ?, b = ? WHERE id = ?`, `UPDATE t SET a = $1, b = $2 WHERE id = $3`},
		{"a question mark in a string literal is left alone", `SELECT coalesce(x, '?') FROM t WHERE id = ?`, `SELECT coalesce(x, '?') FROM t WHERE id = $1`},
		{"an escaped quote does not end the literal early", `SELECT 'it''s ?' WHERE a = ?`, `SELECT 'it''s ?' WHERE a = $1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := numbered(tc.in); got != tc.want {
				t.Errorf("numbered(%q) = %q, want %q", tc.in, got, tc.want)
			}
			r := &rebinder{numbered: true}
			if got, again := r.rebind(tc.in), r.rebind(tc.in); got != tc.want || again != tc.want {
				t.Errorf("rebind(%q) = %q then %q, want %q", tc.in, got, again, tc.want)
			}
			if got := (&rebinder{}).rebind(tc.in); got != tc.in {
				t.Errorf("rebind without numbering changed %q to %q", tc.in, got)
			}
		})
	}
}
