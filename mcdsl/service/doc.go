// Package service is the one way a platform service starts and stops.
//
// Run calls the service's build function, which opens the store and
// constructs every server, registering each on the Runtime — but binds and
// serves nothing. Only when build has succeeded does Run bind every
// listener, and only when every bind has succeeded does it serve them all.
// A failure at any step closes whatever was opened (listeners, then the
// OnClose functions in reverse order) and returns the error, so a bad
// certificate or a taken port never leaves half a service answering on a
// closed store. SIGINT/SIGTERM (through the context) stop every server
// with a bounded drain; Run logs one line when the service has started
// and one when it has stopped cleanly.
//
// Main wraps Run into the standard binary: the verbs server, init, status
// and snapshot, the --config flag, signal handling and the exit code, so a
// service's cmd/ main is a declaration.
package service
