// Package admin is mc-proxy's runtime administration: the domain Service
// that changes routes and firewall rules (a store transaction that hands
// the new state to the data plane before it commits), the AdminService
// gRPC handlers over it, and the Unix socket they are served on, whose
// file permissions are the access control.
package admin
