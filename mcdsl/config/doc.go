// Package config loads a service's TOML configuration into typed structs.
// Unknown keys are errors (a silently dropped setting caused a production
// incident), required fields are checked before the service starts, values
// may be overridden from the environment as <SERVICE>_<SECTION>_<KEY>, and
// $PORT / $PORT_GRPC — set by the MCP agent — win over everything for
// server.listen_addr and server.grpc_addr.
package config
