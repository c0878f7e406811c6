package policy

import "testing"

// The first version's diff is from the empty document: every line is an
// addition, none a removal of the document itself.
func TestDiffFromTheEmptyDocument(t *testing.T) {
	doc := Document{ScopeMinACR: map[string]string{"payroll:write": "phr"}}
	if got, want := Diff(Document{}, doc), `+ scope_min_acr.payroll:write: "phr"`; got != want {
		t.Errorf("Diff(empty, doc) = %q, want %q", got, want)
	}
	if got, want := Diff(doc, Document{}), `- scope_min_acr.payroll:write: "phr"`; got != want {
		t.Errorf("Diff(doc, empty) = %q, want %q", got, want)
	}
	if got := Diff(Document{}, Document{}); got != "" {
		t.Errorf("Diff(empty, empty) = %q", got)
	}
}
