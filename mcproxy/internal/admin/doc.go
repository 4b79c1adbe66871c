// Package admin is mc-proxy's runtime administration: the domain Service
// that changes routes and firewall rules (a store transaction that hands
// the new state to the data plane before it commits), with errors of
// mcdsl/apierr kinds, and the AdminService gRPC handlers over it, which
// mc-proxy serves with mcdsl/grpcserver on its admin Unix socket (every
// method public: the socket's file permissions are the access control).
package admin
