// Package httpserver runs a service's HTTP API: TLS 1.3 only (or plain HTTP,
// explicitly, for services behind an mc-proxy L7 route), the platform's
// timeouts, one structured log line per request, and a graceful drain of
// in-flight requests when the context is cancelled on SIGINT/SIGTERM.
package httpserver
