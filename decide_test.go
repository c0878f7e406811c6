package keystep_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOneDecision pins issue 16's first rule: what a sign-in must show is
// decided in one place. stepup.Decide has exactly one caller outside its
// package, the dispatcher in package login; the portal, the console and
// the passkey pages ask idp/stepup's smaller queries (Fresh, Reachable,
// Admit, ...) instead of probing Decide with made-up inputs.
func TestOneDecision(t *testing.T) {
	var calls []string
	for _, root := range []string{"login", "idp", "cmd"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(src), "\n") {
				if strings.Contains(line, "stepup.Decide(") {
					calls = append(calls, filepath.ToSlash(path)+":"+strconv.Itoa(i+1))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(calls) != 1 || filepath.Dir(strings.SplitN(calls[0], ":", 2)[0]) != "login" {
		t.Errorf("stepup.Decide( appears at %q; want exactly one call, in package login's dispatcher", calls)
	}
}
