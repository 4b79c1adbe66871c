// Package apierr is the platform's one vocabulary of API errors. Domain
// packages return errors of a Kind (invalid input naming a field, not
// found, conflict, unauthenticated, denied, throttled with a retry delay,
// unavailable or sealed); the transports turn them into an HTTP status and
// the {"error": "..."} body, or a gRPC status with standard details, in one
// place, so the REST and gRPC faces of a service cannot disagree.
//
// Anything that is not of a Kind is Internal: its text goes to the log and
// the caller sees only "internal error".
package apierr
