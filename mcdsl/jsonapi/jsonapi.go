package jsonapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
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

// RequireJSON refuses a request body that is not application/json (with
// any parameters, such as charset) with 415 and {"error": "..."}. Form and
// text bodies are what a page on another origin can make a browser send
// without a CORS preflight ("simple requests"); JSON is not. Requests
// without a body pass.
func RequireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if HasBody(r) && !IsJSON(r.Header.Get("Content-Type")) {
			Write(w, http.StatusUnsupportedMediaType, map[string]string{"error": UnsupportedMediaType})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// UnsupportedMediaType is the error of a refused non-JSON body.
const UnsupportedMediaType = "request body must be application/json"

// HasBody reports whether a request carries a body (a declared length or
// a chunked one).
func HasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// IsJSON reports whether a Content-Type is application/json, with or
// without parameters.
func IsJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
