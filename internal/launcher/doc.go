// Package launcher runs the Metacircular platform on one machine: it creates
// the seed CA, then starts each platform service as a child process in
// bootstrap order, waiting for each to be healthy before starting the next,
// and stops them in reverse order on request or when one dies. State lives
// under one root directory so that a re-run reuses the CA, ports and configs
// of the previous run; Status and Down inspect and stop a running launcher
// from another process through the files it keeps in <root>/launcher.
package launcher
