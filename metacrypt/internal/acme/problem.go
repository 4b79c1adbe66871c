package acme

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// The problem types (RFC 8555 §6.7, RFC 9773 §7.4).
const (
	ErrAccountDoesNotExist     = "accountDoesNotExist"
	ErrAlreadyReplaced         = "alreadyReplaced"
	ErrAlreadyRevoked          = "alreadyRevoked"
	ErrBadCSR                  = "badCSR"
	ErrBadNonce                = "badNonce"
	ErrBadPublicKey            = "badPublicKey"
	ErrBadRevocationReason     = "badRevocationReason"
	ErrBadSignatureAlgorithm   = "badSignatureAlgorithm"
	ErrConnection              = "connection"
	ErrDNS                     = "dns"
	ErrExternalAccountRequired = "externalAccountRequired"
	ErrIncorrectResponse       = "incorrectResponse"
	ErrInvalidContact          = "invalidContact"
	ErrMalformed               = "malformed"
	ErrOrderNotReady           = "orderNotReady"
	ErrRejectedIdentifier      = "rejectedIdentifier"
	ErrServerInternal          = "serverInternal"
	ErrTLS                     = "tls"
	ErrUnauthorized            = "unauthorized"
	ErrUnsupportedContact      = "unsupportedContact"
	ErrUnsupportedIdentifier   = "unsupportedIdentifier"
)

// ProblemNS prefixes every ACME problem type.
const ProblemNS = "urn:ietf:params:acme:error:"

// Problem is an RFC 7807 problem document with an ACME error type. It is
// an error; the HTTP layer writes it as application/problem+json.
type Problem struct {
	Type        string      `json:"type"`
	Detail      string      `json:"detail,omitempty"`
	Status      int         `json:"status,omitempty"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []Problem   `json:"subproblems,omitempty"`
	// Algorithms lists the accepted algorithms (badSignatureAlgorithm).
	Algorithms []string `json:"algorithms,omitempty"`
	// RetryAfter, when set, is sent as Retry-After.
	RetryAfter time.Duration `json:"-"`
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

// statusOf is the HTTP status of each problem type.
var statusOf = map[string]int{
	ErrAccountDoesNotExist: http.StatusBadRequest, ErrAlreadyReplaced: http.StatusConflict,
	ErrAlreadyRevoked: http.StatusBadRequest, ErrBadCSR: http.StatusBadRequest, ErrBadNonce: http.StatusBadRequest,
	ErrBadPublicKey: http.StatusBadRequest, ErrBadRevocationReason: http.StatusBadRequest,
	ErrBadSignatureAlgorithm: http.StatusBadRequest, ErrConnection: http.StatusBadRequest, ErrDNS: http.StatusBadRequest,
	ErrExternalAccountRequired: http.StatusUnauthorized, ErrIncorrectResponse: http.StatusBadRequest,
	ErrInvalidContact: http.StatusBadRequest, ErrMalformed: http.StatusBadRequest, ErrOrderNotReady: http.StatusForbidden,
	ErrRejectedIdentifier: http.StatusBadRequest, ErrServerInternal: http.StatusInternalServerError,
	ErrTLS: http.StatusBadRequest, ErrUnauthorized: http.StatusForbidden, ErrUnsupportedContact: http.StatusBadRequest,
	ErrUnsupportedIdentifier: http.StatusBadRequest,
}

// NewProblem makes a problem of an ACME error type ("badNonce") with its
// usual HTTP status.
func NewProblem(typ, format string, a ...any) *Problem {
	st, ok := statusOf[typ]
	if !ok {
		st = http.StatusBadRequest
	}
	return &Problem{Type: ProblemNS + typ, Detail: fmt.Sprintf(format, a...), Status: st}
}

// withStatus overrides the HTTP status.
func (p *Problem) withStatus(st int) *Problem { p.Status = st; return p }

// Is reports whether err is a problem of type typ ("badNonce").
func Is(err error, typ string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Type == ProblemNS+typ
}

// SealedRetry is the Retry-After of answers while sealed.
const SealedRetry = 30 * time.Second

// ProblemOf turns any error into the problem to answer: a *Problem as it
// is, the apierr kinds of the domain (sealed, denied, invalid, not
// found...) as their closest ACME types, anything else as serverInternal
// without detail (the caller logs it). fallback is the type for Invalid
// (badCSR at finalization, malformed elsewhere).
func ProblemOf(err error, fallback string) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	st := apierr.Describe(err)
	msg := st.Message
	switch st.Kind {
	case apierr.Unavailable:
		q := NewProblem(ErrServerInternal, "metacrypt is sealed or unavailable: %s", msg).withStatus(http.StatusServiceUnavailable)
		q.RetryAfter = SealedRetry
		return q
	case apierr.Denied:
		return NewProblem(ErrUnauthorized, "%s", msg)
	case apierr.Invalid:
		return NewProblem(fallback, "%s", msg)
	case apierr.NotFound:
		return NewProblem(ErrMalformed, "%s", msg).withStatus(http.StatusNotFound)
	case apierr.Conflict:
		return NewProblem(ErrMalformed, "%s", msg).withStatus(http.StatusConflict)
	case apierr.Precondition:
		return NewProblem(ErrMalformed, "%s", msg).withStatus(http.StatusForbidden)
	case apierr.Throttled:
		return &Problem{Type: ProblemNS + "rateLimited", Detail: msg, Status: http.StatusTooManyRequests, RetryAfter: st.RetryAfter}
	}
	return NewProblem(ErrServerInternal, "internal error").withStatus(http.StatusInternalServerError)
}
