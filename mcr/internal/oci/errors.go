package oci

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Code is one of the distribution spec's error codes.
type Code string

// The spec's codes (distribution-spec "Error Codes").
const (
	ErrBlobUnknown         Code = "BLOB_UNKNOWN"
	ErrBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	ErrBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	ErrDigestInvalid       Code = "DIGEST_INVALID"
	ErrManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	ErrManifestInvalid     Code = "MANIFEST_INVALID"
	ErrManifestUnknown     Code = "MANIFEST_UNKNOWN"
	ErrNameInvalid         Code = "NAME_INVALID"
	ErrNameUnknown         Code = "NAME_UNKNOWN"
	ErrSizeInvalid         Code = "SIZE_INVALID"
	ErrUnauthorized        Code = "UNAUTHORIZED"
	ErrDenied              Code = "DENIED"
	ErrUnsupported         Code = "UNSUPPORTED"
	ErrTooManyRequests     Code = "TOOMANYREQUESTS"
	// ErrRangeInvalid is a 416 for an upload chunk that does not start at
	// the session's current offset; the spec names only the status, so
	// the body uses BLOB_UPLOAD_INVALID.
	ErrRangeInvalid Code = "BLOB_UPLOAD_INVALID"
	// ErrUnknown is for 5xx answers, which the spec leaves free.
	ErrUnknown Code = "UNKNOWN"
)

// status is each code's default HTTP status.
var status = map[Code]int{
	ErrBlobUnknown: http.StatusNotFound, ErrBlobUploadInvalid: http.StatusBadRequest,
	ErrBlobUploadUnknown: http.StatusNotFound, ErrDigestInvalid: http.StatusBadRequest,
	ErrManifestBlobUnknown: http.StatusBadRequest, ErrManifestInvalid: http.StatusBadRequest,
	ErrManifestUnknown: http.StatusNotFound, ErrNameInvalid: http.StatusBadRequest,
	ErrNameUnknown: http.StatusNotFound, ErrSizeInvalid: http.StatusBadRequest,
	ErrUnauthorized: http.StatusUnauthorized, ErrDenied: http.StatusForbidden,
	ErrUnsupported: http.StatusMethodNotAllowed, ErrTooManyRequests: http.StatusTooManyRequests,
	ErrUnknown: http.StatusInternalServerError,
}

// Error is an answer in the spec's error form.
type Error struct {
	Code    Code
	Status  int
	Message string
	Detail  any
}

// NewError is an Error with code's default status.
func NewError(code Code, msg string) *Error {
	return &Error{Code: code, Status: status[code], Message: msg}
}

// WithStatus returns a copy of e answering with another status.
func (e *Error) WithStatus(s int) *Error {
	c := *e
	c.Status = s
	return &c
}

// WithDetail returns a copy of e carrying detail.
func (e *Error) WithDetail(d any) *Error {
	c := *e
	c.Detail = d
	return &c
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

type wireError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// Body is the JSON body {"errors":[...]} for errs.
func Body(errs ...*Error) []byte {
	out := struct {
		Errors []wireError `json:"errors"`
	}{Errors: make([]wireError, 0, len(errs))}
	for _, e := range errs {
		out.Errors = append(out.Errors, wireError{Code: e.Code, Message: e.Message, Detail: e.Detail})
	}
	b, _ := json.Marshal(out)
	return b
}

// Write answers w with e in the spec's form.
func Write(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_, _ = w.Write(Body(e))
}
