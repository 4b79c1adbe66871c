package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Kind classifies an error for API callers.
type Kind uint8

// The kinds. Internal is the zero value: anything unclassified.
const (
	Internal Kind = iota
	// Invalid is bad input (400, InvalidArgument); Error.Field names it.
	Invalid
	// NotFound: the named thing does not exist (404, NotFound).
	NotFound
	// Conflict: it exists already, or the change clashes with the current
	// state (409, AlreadyExists).
	Conflict
	// Precondition: a condition of the request does not hold (412,
	// FailedPrecondition).
	Precondition
	// Unauthenticated: no or bad credentials (401, Unauthenticated).
	Unauthenticated
	// Denied: the caller may not do this (403, PermissionDenied).
	Denied
	// Throttled: too many attempts; Error.RetryAfter says when to come back
	// (429, ResourceExhausted).
	Throttled
	// Unavailable: the service cannot answer now — sealed, a dependency
	// down, overloaded (503, Unavailable).
	Unavailable
	// Unimplemented: the operation does not exist here (501,
	// Unimplemented).
	Unimplemented
)

var kindNames = [...]string{
	Internal: "internal", Invalid: "invalid", NotFound: "not found", Conflict: "conflict",
	Precondition: "precondition failed", Unauthenticated: "unauthenticated", Denied: "denied",
	Throttled: "throttled", Unavailable: "unavailable", Unimplemented: "unimplemented",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

var httpStatus = [...]int{
	Internal: http.StatusInternalServerError, Invalid: http.StatusBadRequest, NotFound: http.StatusNotFound,
	Conflict: http.StatusConflict, Precondition: http.StatusPreconditionFailed,
	Unauthenticated: http.StatusUnauthorized, Denied: http.StatusForbidden,
	Throttled: http.StatusTooManyRequests, Unavailable: http.StatusServiceUnavailable,
	Unimplemented: http.StatusNotImplemented,
}

// HTTPStatus is the HTTP status code of the kind.
func (k Kind) HTTPStatus() int {
	if int(k) < len(httpStatus) {
		return httpStatus[k]
	}
	return http.StatusInternalServerError
}

// KindOfHTTP is the kind of an HTTP error status (Internal for anything
// the platform does not answer with).
func KindOfHTTP(code int) Kind {
	switch code {
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return Invalid
	case http.StatusMethodNotAllowed:
		return Unimplemented
	}
	for k, c := range httpStatus {
		if c == code {
			return Kind(k)
		}
	}
	return Internal
}

// Sentinel is a named error of one kind, declared once by a domain package
// and matched with errors.Is:
//
//	var ErrNotFound = apierr.New(apierr.NotFound, "not found")
//	return fmt.Errorf("%w: zone %s", ErrNotFound, name)
//
// A caller sees the whole wrapped text ("not found: zone x"), unless the
// sentinel is Opaque.
type Sentinel struct {
	kind   Kind
	msg    string
	opaque bool
}

// New declares a sentinel of kind k.
func New(k Kind, msg string) *Sentinel { return &Sentinel{kind: k, msg: msg} }

// Opaque declares a sentinel whose own message is all a caller ever sees,
// whatever context wraps it — for answers that must not tell more (bad
// credentials, throttling).
func Opaque(k Kind, msg string) *Sentinel { return &Sentinel{kind: k, msg: msg, opaque: true} }

func (s *Sentinel) Error() string { return s.msg }

// Kind is the sentinel's kind.
func (s *Sentinel) Kind() Kind { return s.kind }

// Error is an error with API details: a kind, the field that was invalid,
// and how long to wait before retrying.
type Error struct {
	Kind Kind
	// Field names the invalid input ("records[0].ttl"), for Invalid.
	Field string
	// RetryAfter is the wait a throttled or unavailable caller should
	// observe; zero means unspecified.
	RetryAfter time.Duration
	// Msg is the text shown to the caller.
	Msg string
	// Err is the cause; errors.Is and errors.As see through to it.
	Err error
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Kind.String()
}

func (e *Error) Unwrap() error { return e.Err }

// InvalidField reports bad input in field. The message names the field:
// "ttl: must be at least 1".
func InvalidField(field, format string, args ...any) error {
	return &Error{Kind: Invalid, Field: field, Msg: field + ": " + fmt.Sprintf(format, args...)}
}

// WithRetry marks err as retryable after d (for Throttled and Unavailable).
func WithRetry(err error, d time.Duration) error {
	return &Error{Kind: KindOf(err), RetryAfter: d, Err: err}
}

// Status is how an error appears to an API caller.
type Status struct {
	Kind       Kind
	Message    string
	Field      string
	RetryAfter time.Duration
}

// HTTPStatus is the status's HTTP status code.
func (s Status) HTTPStatus() int { return s.Kind.HTTPStatus() }

// KindOf is the kind of err: the first kind found walking its chain, or
// Internal.
func KindOf(err error) Kind { return Describe(err).Kind }

// Describe classifies err for a caller. The message is the error's text,
// or the sentinel's own text when an Opaque sentinel is in the chain, or
// "internal error" for errors of no kind (whose text must go to the log
// only). A cancelled or expired context is Unavailable, not Internal: the
// caller gave up, nothing broke.
func Describe(err error) Status {
	st, _ := describe(err)
	return st
}

// describe is Describe, also telling whether the chain had a kind of its
// own.
func describe(err error) (Status, bool) {
	if err == nil {
		return Status{}, false
	}
	st := Status{Message: err.Error()}
	found := false
	var opaque *Sentinel
	walk(err, func(e error) bool {
		switch v := e.(type) { //nolint:errorlint // walk visits each error of the chain itself
		case *Error:
			if !found && v.Kind != Internal {
				st.Kind, found = v.Kind, true
			}
			if st.Field == "" {
				st.Field = v.Field
			}
			if st.RetryAfter == 0 {
				st.RetryAfter = v.RetryAfter
			}
		case *Sentinel:
			if !found {
				st.Kind, found = v.kind, true
			}
			if v.opaque && opaque == nil {
				opaque = v
			}
		}
		return true
	})
	switch {
	case !found && errors.Is(err, context.DeadlineExceeded):
		return Status{Kind: Unavailable, Message: "deadline exceeded"}, false
	case !found && errors.Is(err, context.Canceled):
		return Status{Kind: Unavailable, Message: "request canceled"}, false
	case !found:
		return Status{Kind: Internal, Message: "internal error"}, false
	case opaque != nil:
		st.Message = opaque.msg
	}
	return st, true
}

// walk visits err and every error it wraps, depth first, until visit
// returns false.
func walk(err error, visit func(error) bool) bool {
	for err != nil {
		if !visit(err) {
			return false
		}
		switch u := err.(type) { //nolint:errorlint // walking the chain by hand
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if !walk(e, visit) {
					return false
				}
			}
			return true
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return true
		}
	}
	return true
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }
