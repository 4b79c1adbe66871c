// Package rr turns API input into valid DNS data and back: it canonicalizes
// names (lower case, fully qualified, inside the zone), validates each
// record type's value by parsing it with the DNS library, and builds the
// dns.RR values the server answers with, so the API can never store a
// record the server could not serve.
package rr
