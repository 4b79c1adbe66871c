// Package e2e holds MCP's end-to-end tests: the mcp CLI and the mcp-agent
// binary against the real platform (MCIAS, Metacrypt, MCNS, mc-proxy,
// MCR) and real podman, started by internal/platformtest. See
// e2e_test.go.
package e2e
