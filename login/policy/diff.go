package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Diff says what changed from a to b, one line per changed value, for
// people: "+ path: value" added, "- path: value" removed, "~ path: old →
// new" changed, in path order. Equal documents give "".
func Diff(a, b Document) string {
	fa, fb := flatten(a), flatten(b)
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(fa)) {
		switch vb, ok := fb[k]; {
		case !ok:
			lines = append(lines, "- "+k+": "+fa[k])
		case vb != fa[k]:
			lines = append(lines, "~ "+k+": "+fa[k]+" → "+vb)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fb)) {
		if _, ok := fa[k]; !ok {
			lines = append(lines, "+ "+k+": "+fb[k])
		}
	}
	slices.SortStableFunc(lines, func(x, y string) int { return strings.Compare(x[2:], y[2:]) })
	return strings.Join(lines, "\n")
}

// flatten maps each leaf of doc's JSON to its path: levels[1].acr,
// client_policies.payroll.scope_min_acr.payroll:write. An empty list or
// object is a leaf ("[]", "{}").
func flatten(doc Document) map[string]string {
	var tree any
	if err := json.Unmarshal([]byte(Canonical(doc)), &tree); err != nil {
		panic("policy: a canonical document always reads back: " + err.Error())
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 && path != "" { // the empty document has no values
				out[path] = "{}"
			}
			for k, e := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, e)
			}
		case []any:
			if len(v) == 0 {
				out[path] = "[]"
			}
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		default:
			raw, _ := json.Marshal(v)
			out[path] = string(raw)
		}
	}
	walk("", tree)
	return out
}
