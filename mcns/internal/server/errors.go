package server

import (
	"errors"
	"log/slog"
	"net/http"

	"git.metacircular.net/metacircular/mcdsl/jsonapi"

	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// statusOf maps domain errors to HTTP status codes and the message shown.
// Anything unexpected is a 500 whose detail goes to the log only.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, records.ErrUnauthenticated):
		return http.StatusUnauthorized, err.Error()
	case errors.Is(err, records.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrInvalid):
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
