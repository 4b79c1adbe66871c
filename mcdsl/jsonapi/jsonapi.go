package jsonapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxBody bounds a request body read by Decode.
const MaxBody = 64 << 10

// Write sends v as JSON with status code; answers are never cached.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Decode reads a JSON body strictly into dst: unknown fields, trailing data
// and bodies over MaxBody are errors. A failure is returned wrapped in
// invalid, the service's "bad input" sentinel, so it maps to 400.
func Decode(w http.ResponseWriter, r *http.Request, dst any, invalid error) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%w: request body: %v", invalid, err) //nolint:errorlint // the decode error is shown, not matched
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: request body: trailing data after the JSON object", invalid)
	}
	return nil
}
