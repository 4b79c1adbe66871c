// Package metrics is the platform's Prometheus instrumentation, on
// client_golang: a registry with the Go runtime and process collectors,
// per-RPC counters, latency histograms and in-flight gauges (fed by
// mcdsl/grpcserver), the same per HTTP route (Middleware), and the
// /metrics handler. Services add their own collectors to Registry.
//
// The request path takes no lock: each RPC method and each (route,
// method, code) resolves its series once and keeps them in maps read
// without locking, so a request costs a few atomic adds.
package metrics
