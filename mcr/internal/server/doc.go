// Package server wires MCR together: its configuration (mcr.toml), the
// stores, the distribution API and token endpoint, the management API
// (gRPC and its generated REST face), the web UI and the online garbage
// collector, built on mcdsl/service; and the init, status and gc verbs.
package server
