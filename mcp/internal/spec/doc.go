// Package spec is the service definition: the TOML file an operator keeps
// per service (PLATFORM.md §10), parsed strictly — an unknown key, a
// missing field, a duplicate route or an unpinned image is an error naming
// the file, the line and the key — into typed values every other MCP
// package works with, plus the canonical hash that tells a changed
// definition from an unchanged one. It imports nothing else of MCP.
package spec
