// Package e2e holds end-to-end tests: they build the platform's binaries,
// run them together on loopback with seed-CA certificates and drive them
// through their real interfaces, where no single service's tests can.
package e2e
