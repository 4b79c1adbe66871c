package server

import (
	"errors"
	"log/slog"
	"net/http"

	"git.metacircular.net/metacircular/mcdsl/jsonapi"

	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// statusOf maps domain errors to HTTP status codes and the message shown.
// Anything unexpected is a 500 whose detail goes to the log only.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, identity.ErrBadCredentials):
		return http.StatusUnauthorized, identity.ErrBadCredentials.Error()
	case errors.Is(err, identity.ErrTOTPRequired):
		return http.StatusUnauthorized, identity.ErrTOTPRequired.Error()
	case errors.Is(err, identity.ErrInvalidToken):
		return http.StatusUnauthorized, identity.ErrInvalidToken.Error()
	case errors.Is(err, identity.ErrPolicyDenied):
		return http.StatusForbidden, identity.ErrPolicyDenied.Error()
	case errors.Is(err, identity.ErrForbidden):
		return http.StatusForbidden, identity.ErrForbidden.Error()
	case errors.Is(err, identity.ErrThrottled):
		return http.StatusTooManyRequests, identity.ErrThrottled.Error()
	case errors.Is(err, identity.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, identity.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, identity.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	}
	return http.StatusInternalServerError, "internal error"
}

// grpcStatus is statusOf for gRPC.
func grpcStatus(logger *slog.Logger, err error) error {
	code, msg := statusOf(err)
	if code == http.StatusInternalServerError {
		logger.Error("internal error", "error", err)
	}
	return status.Error(jsonapi.GRPCCode(code), msg)
}
