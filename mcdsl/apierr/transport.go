package apierr

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

var grpcCodes = [...]codes.Code{
	Internal: codes.Internal, Invalid: codes.InvalidArgument, NotFound: codes.NotFound,
	Conflict: codes.AlreadyExists, Precondition: codes.FailedPrecondition,
	Unauthenticated: codes.Unauthenticated, Denied: codes.PermissionDenied,
	Throttled: codes.ResourceExhausted, Unavailable: codes.Unavailable,
	Unimplemented: codes.Unimplemented,
}

// GRPCCode is the gRPC code of the kind.
func (k Kind) GRPCCode() codes.Code {
	if int(k) < len(grpcCodes) {
		return grpcCodes[k]
	}
	return codes.Internal
}

// KindOfGRPC is the kind of a gRPC code. Codes the platform does not answer
// with map to the closest kind (Aborted is a Conflict, DeadlineExceeded and
// Canceled are Unavailable).
func KindOfGRPC(c codes.Code) Kind {
	switch c {
	case codes.OK:
		return Internal
	case codes.OutOfRange:
		return Invalid
	case codes.Aborted:
		return Conflict
	case codes.DeadlineExceeded, codes.Canceled:
		return Unavailable
	}
	for k, gc := range grpcCodes {
		if gc == c {
			return Kind(k)
		}
	}
	return Internal
}

// Body is the JSON error body every platform REST API answers with.
type Body struct {
	Error string `json:"error"`
	// Field names the invalid input, when known.
	Field string `json:"field,omitempty"`
}

// WriteHTTP answers err as {"error": "..."} with its status code, a
// Retry-After header when the error carries a delay, and a Bearer challenge
// on 401. Internal errors are logged (when logger is not nil) and shown as
// "internal error".
func WriteHTTP(w http.ResponseWriter, logger *slog.Logger, err error) {
	st := Describe(err)
	if st.Kind == Internal && logger != nil {
		logger.Error("internal error", "error", err)
	}
	WriteStatus(w, st)
}

// WriteStatus answers st as WriteHTTP does.
func WriteStatus(w http.ResponseWriter, st Status) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	if st.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(retrySeconds(st.RetryAfter), 10))
	}
	if st.Kind == Unauthenticated {
		h.Set("WWW-Authenticate", `Bearer realm="metacircular"`)
	}
	w.WriteHeader(st.HTTPStatus())
	_ = json.NewEncoder(w).Encode(Body{Error: st.Message, Field: st.Field})
}

// retrySeconds rounds a delay up to whole seconds, at least one.
func retrySeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

// GRPC turns err into a gRPC status error: the kind's code, the caller's
// message, a BadRequest detail naming the field and a RetryInfo detail
// with the delay. A gRPC status error passes through unchanged. Internal
// errors are logged (when logger is not nil) and shown as "internal error".
func GRPC(logger *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok { //nolint:errorlint // only a status itself passes through, not one wrapped in context
		return err
	}
	st, kinded := describe(err)
	if !kinded && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return status.FromContextError(err).Err()
	}
	if st.Kind == Internal && logger != nil {
		logger.Error("internal error", "error", err)
	}
	return StatusOf(st).Err()
}

// StatusOf is the gRPC status of st.
func StatusOf(st Status) *status.Status {
	s := status.New(st.Kind.GRPCCode(), st.Message)
	var details []protoadapt.MessageV1
	if st.Field != "" {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: st.Field, Description: st.Message},
		}})
	}
	if st.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(st.RetryAfter)})
	}
	if len(details) == 0 {
		return s
	}
	if ds, err := s.WithDetails(details...); err == nil {
		return ds
	}
	return s
}

// FromGRPC describes an error a gRPC call returned. Errors that are not
// gRPC statuses are Unavailable (the call did not get an answer).
func FromGRPC(err error) Status {
	if err == nil {
		return Status{}
	}
	s, ok := status.FromError(err)
	if !ok {
		return Status{Kind: Unavailable, Message: err.Error()}
	}
	st := Status{Kind: KindOfGRPC(s.Code()), Message: s.Message()}
	for _, d := range s.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			if v := d.GetFieldViolations(); len(v) > 0 {
				st.Field = v[0].GetField()
			}
		case *errdetails.RetryInfo:
			st.RetryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	return st
}

// Remote is an error answer from another service, as a client sees it.
// It carries the kind, so errors.Is(err, apierr.NotFound)-style checks
// work with Is(err, kind) across a network hop.
type Remote struct {
	Status
	// Service names who answered, for the error text.
	Service string
}

func (e *Remote) Error() string {
	if e.Service == "" {
		return e.Message
	}
	return e.Service + ": " + e.Message
}

// Unwrap exposes the kind to Describe and KindOf.
func (e *Remote) Unwrap() error {
	return &Error{Kind: e.Kind, Field: e.Field, RetryAfter: e.RetryAfter, Msg: e.Message}
}

// FromGRPCError wraps a failed call's error as a *Remote of service,
// keeping its kind, field and retry delay.
func FromGRPCError(service string, err error) error {
	if err == nil {
		return nil
	}
	var r *Remote
	if errors.As(err, &r) {
		return err
	}
	return &Remote{Status: FromGRPC(err), Service: service}
}
