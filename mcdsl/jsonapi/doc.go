// Package jsonapi is the shared plumbing of the platform's REST APIs: JSON
// answers, {"error": "..."} bodies, strict bounded request decoding, and
// the one mapping from HTTP status codes to gRPC codes that keeps a
// service's REST and gRPC APIs answering alike (PLATFORM.md §4).
package jsonapi
