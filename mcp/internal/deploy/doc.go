// Package deploy is the agent's operation state machine. Every change to a
// service — deploy, undeploy, stop, start, restart, recover — is an
// operation: a fixed list of steps for its kind (see Steps), each with a
// Do and, where something can be taken back, an Undo. Before a step runs,
// the operation's row in the registry records which step it is at; every
// transition is an event row. The state is never inferred from control
// flow: an agent killed at any point finds the operation in the registry
// on its next start and resumes it at that step (steps are idempotent:
// they look at what exists before creating it), or, if it was rolling
// back, goes on undoing. A step that fails turns the operation around:
// the steps done so far are undone in reverse order and the operation
// ends rolled back, with the failing step and its cause as the error.
//
// The seams to the outside are small interfaces declared here (Certs,
// Routes, DNS) plus runtime.Runtime; internal/certs, internal/routes and
// internal/dns implement them over the Metacrypt, mc-proxy and MCNS
// clients, and the tests use in-memory fakes.
package deploy
