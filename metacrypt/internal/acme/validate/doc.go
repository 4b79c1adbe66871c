// Package validate checks ACME challenges over the network: http-01 (RFC
// 8555 §8.3), dns-01 (§8.4) and tls-alpn-01 (RFC 8737), for DNS names and
// IP addresses (RFC 8738). Its network I/O goes through the three
// methods of Network (step-ca's seam), so the checks are testable without
// sockets; Net is the real one, resolving names through the configured
// resolvers (MCNS), tried in order, and dialing the configured ports.
package validate
