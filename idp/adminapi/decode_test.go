package adminapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDuplicateMember(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"b":[{"c":1},{"c":2}],"d":{"e":{"f":1}}}`: "",
		`{"a":1,"a":2}`:               "a",
		`{"x":{"y":[{"z":1,"z":2}]}}`: "z",
		`{"reason":"r","Reason":"s"}`: "Reason",
		`{"a":1,"\u0061":2}`:          "a",
		`[{"k":1},{"k":1}]`:           "",
	} {
		got, err := duplicateMember([]byte(body))
		if err != nil || got != want {
			t.Errorf("duplicateMember(%s) = %q, %v; want %q", body, got, err, want)
		}
	}
}

func TestDecodeRefusesBadBodies(t *testing.T) {
	for name, body := range map[string]string{
		"invalid UTF-8":         "{\"reason\":\"ticket\xff\"}",
		"a member twice":        `{"reason":"a","reason":"b"}`,
		"a member twice, cased": `{"reason":"a","REASON":"b"}`,
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var in reasonInput
		err := decode(r, &in, false)
		if e, ok := err.(*Error); !ok || e.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want a 400", name, err)
		}
	}
	if _, _, err := decodeDocument([]byte(`{"levels":{},"levels":{}}`)); err == nil {
		t.Error("a policy document naming levels twice was read")
	}
}
