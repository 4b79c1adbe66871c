// Package health answers "is this service up?" the same way over REST
// (GET /v1/health) and over the standard gRPC health protocol, from one
// check function, so the launcher, the MCP agent's boot sequencing and
// operators all see the same answer.
package health
