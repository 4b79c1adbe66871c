// Package server exposes the identity domain over REST (chi) and gRPC. The
// handlers only translate: they decode and bound the input, call the same
// identity.Service method, and map its errors to status codes in one place
// (statusOf / grpcStatus), so the two APIs answer alike.
package server
