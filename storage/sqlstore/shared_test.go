package sqlstore

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The SQL backends keep only what really differs; what they share lives
// here, so that a fix made in one cannot be forgotten in the other (issue
// 16). This counts the source lines the two still share verbatim.
func TestBackendsShareLittleCodeVerbatim(t *testing.T) {
	const bound = 300
	a, b := codeLines(t, "../sqlite"), codeLines(t, "../postgres")
	shared := 0
	var lines []string
	for l, n := range a {
		if m := min(n, b[l]); m > 0 {
			shared += m
			lines = append(lines, l)
		}
	}
	t.Logf("%d lines shared verbatim between storage/sqlite and storage/postgres", shared)
	if shared >= bound {
		slices.Sort(lines)
		t.Errorf("%d lines shared verbatim, want fewer than %d; move them to sqlstore:\n%s", shared, bound, strings.Join(lines, "\n"))
	}
}

var punctuation = regexp.MustCompile(`^[(){}\[\],;]*$`)

// codeLines counts the trimmed lines of the non-test Go files in dir,
// leaving out blank lines, comment lines, import blocks and lines of
// punctuation only.
func codeLines(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	count := map[string]int{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		imports := false
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			switch {
			case l == "import (":
				imports = true
			case imports:
				imports = l != ")"
			case l == "", strings.HasPrefix(l, "//"), punctuation.MatchString(l):
			default:
				count[l]++
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return count
}
