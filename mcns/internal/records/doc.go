// Package records is the MCNS domain: zone and record operations with their
// authorization. REST and gRPC handlers call the same Service method, so both
// APIs enforce one rule set; Service validates input with package rr,
// writes through package store (which bumps the SOA serial) and logs every
// change with the caller's name.
package records
