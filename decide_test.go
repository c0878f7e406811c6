package keystep_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	// The second legitimate caller is the policy impact preview (issue 21):
	// it asks Decide the dispatcher's own question again, of the input the
	// audit log recorded for a real sign-in (signin.Replay), under the
	// current and a proposed policy. That is a replay of the one decision,
	// not a second one, and no made-up input.
	want := []string{"login", "login/admin/impact"}
	var dirs []string
	for _, c := range calls {
		dirs = append(dirs, filepath.ToSlash(filepath.Dir(strings.SplitN(c, ":", 2)[0])))
	}
	slices.Sort(dirs)
	if !slices.Equal(dirs, want) {
		t.Errorf("stepup.Decide( appears at %q; want exactly one call in package login's dispatcher and one in the policy preview (login/admin/impact)", calls)
	}
}
