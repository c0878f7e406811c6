package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// Decode decodes a JSON or YAML file into v (a pointer to a struct with
// JSON field names). A file that starts with '{' is
// JSON and is decoded as it is, so JSON mistakes are reported with JSON's
// own words and offsets; anything else is YAML, turned into JSON first so
// that both formats share the JSON field names, the strict decoder and the
// checks. Unknown fields do not stop the decoding: they come back as
// problems, all of them, to be reported with every other problem.
func Decode(raw []byte, v any) ([]error, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, errors.New("empty file; want a JSON or YAML object")
	}
	if trimmed[0] != '{' {
		j, err := yamlToJSON(raw)
		if err != nil {
			return nil, err
		}
		raw = j
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty file; want a JSON object")
		}
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON object")
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	return unknownFields(tree, reflect.TypeOf(v), ""), nil
}

// yamlToJSON converts one YAML document to JSON. It reads YAML 1.2
// (go.yaml.in/yaml/v3), not YAML 1.1, where an unquoted y, n, yes, no, on
// or off is a boolean, keys included, so the y coordinate of an EC key and the n modulus of an RSA key in a client's jwks
// would turn into "true" and "false". A key given twice is an error.
func yamlToJSON(raw []byte) ([]byte, error) {
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("YAML: more than one document; want one mapping")
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, errors.New("want a YAML mapping (key: value lines) at the top")
	}
	return json.Marshal(jsonable(tree))
}

// YAML writes JSON as block-style YAML with go.yaml.in/yaml/v3, the
// one YAML library Keystep uses, keeping the order of keys: JSON is YAML,
// so it is read into a node tree and written back without JSON's flow
// style and quotes. The encoder still quotes a string that would read as
// another type (y, no, 1.0, null), so Decode gives back the same JSON.
func YAML(raw []byte) ([]byte, error) {
	var n yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	blockStyle(&n)
	var b bytes.Buffer
	enc := yamlv3.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func blockStyle(n *yamlv3.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// jsonable makes a decoded YAML tree encodable as JSON: mapping keys that
// are not strings (1: x) become strings.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	}
	return v
}

// unknownFields lists the object keys in v that t has no JSON field for,
// named by their path (clients[2].colour), in file order where JSON keeps
// one and sorted otherwise.
func unknownFields(v any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.RawMessage]() || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil // decoded by its own rules, unknown fields included
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		fields := map[string]reflect.Type{}
		for f := range jsonFields(t) {
			fields[f.name] = f.typ
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			ft, known := fields[k]
			if !known {
				where := ""
				if path != "" {
					where = path + ": "
				}
				errs = append(errs, fmt.Errorf("%sunknown field %q", where, k))
				continue
			}
			errs = append(errs, unknownFields(obj[k], ft, join(path, k))...)
		}
	case reflect.Slice:
		list, _ := v.([]any)
		for i, item := range list {
			errs = append(errs, unknownFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		obj, _ := v.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			errs = append(errs, unknownFields(obj[k], t.Elem(), join(path, k))...)
		}
	}
	return errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields yields t's fields by JSON name, embedded structs flattened.
func jsonFields(t reflect.Type) func(func(jsonField) bool) {
	return func(yield func(jsonField) bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if f.Anonymous && name == "" {
				for sub := range jsonFields(f.Type) {
					if !yield(sub) {
						return
					}
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !yield(jsonField{name, f.Type}) {
				return
			}
		}
	}
}
