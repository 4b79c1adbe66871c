// Package tlsutil loads the platform's TLS material: server configurations
// that speak TLS 1.3 only, CA pools for clients, and the full-chain check that
// keeps a leaf-only certificate from ever being served (clients that lack the
// intermediate would fail to verify it).
package tlsutil
