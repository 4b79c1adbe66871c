package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// decodeObject decodes data, which must be exactly one JSON object, into v.
// Beyond DisallowUnknownFields it closes two gaps in encoding/json that JWT
// parser-differential attacks use: keys must match a field name exactly
// (encoding/json folds case, so "ALG" would fill Alg) and may appear only
// once (encoding/json keeps the last). A null member is refused too, so
// "present" always means "has a value".
func decodeObject(data []byte, fields []string, v any) error {
	if err := checkMembers(data, fields); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after json object")
	}
	return nil
}

func checkMembers(data []byte, fields []string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a json object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decode json: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("decode json: object key is not a string")
		}
		if !slices.Contains(fields, key) {
			return fmt.Errorf("unknown field %.32q", key)
		}
		if seen[key] {
			return fmt.Errorf("duplicate field %q", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return fmt.Errorf("decode json: %w", err)
		}
		if string(value) == "null" {
			return fmt.Errorf("field %q is null", key)
		}
	}
	return nil
}
