package main

import "testing"

func TestPrintableEscapesWhatATerminalWouldObey(t *testing.T) {
	for in, want := range map[string]string{
		"ticket-7 (café)":          "ticket-7 (café)",
		"a\x1b]0;pwned\x07\x1b[2J": `a\x1b]0;pwned\a\x1b[2J`,
		"one\nforged\r\tline":      `one\nforged\r\tline`,
		"evil\u202etxt.exe":        `evil\u202etxt.exe`,
		"bad\xffbyte\u0085":        `bad\xffbyte\u0085`,
		"keeps \uFFFD as sent":     "keeps \uFFFD as sent",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
