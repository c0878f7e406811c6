package login

import "testing"

func TestMailNameKeepsOnlyPlainWords(t *testing.T) {
	for in, want := range map[string]string{
		"Phone":                              "Phone",
		"Anna's work key-2":                  "Anna's work key-2",
		"visit https://evil.example/fix":     "visit httpsevilexamplefix",
		"a\r\nBcc: x@y":                      "aBcc xy",
		"0123456789012345678901234567890123": "01234567890123456789012345678901",
		"":                                   "",
	} {
		if got := mailName(in); got != want {
			t.Errorf("mailName(%q) = %q, want %q", in, got, want)
		}
	}
}
