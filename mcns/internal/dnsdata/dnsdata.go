// Package dnsdata holds MCNS's data types — zones, records, the specs that
// create and change them — and the errors the record API answers with. It
// imports nothing of MCNS, so the store, the DNS server, the record
// service and the API transports all depend on it and never on each other
// for their types.
package dnsdata

import (
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// The errors of the record API. ErrInvalid is wrapped with a message
// naming the bad field.
var (
	ErrNotFound = apierr.New(apierr.NotFound, "not found")
	ErrConflict = apierr.New(apierr.Conflict, "conflict")
	ErrInvalid  = apierr.New(apierr.Invalid, "invalid")
	// ErrUnauthenticated means there is no caller.
	ErrUnauthenticated = apierr.New(apierr.Unauthenticated, "authentication required")
	// ErrForbidden means the caller may not do this.
	ErrForbidden = apierr.New(apierr.Denied, "permission denied")
)

// Zone is a zone and its SOA fields. Name is a lower-case FQDN with the
// trailing dot.
type Zone struct {
	Name       string
	PrimaryNS  string
	AdminEmail string
	Serial     uint32
	Refresh    uint32
	Retry      uint32
	Expire     uint32
	Minimum    uint32
	TTL        uint32
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Record is one resource record. Name is a lower-case FQDN inside Zone;
// Value is the RDATA in presentation format, normalized by rr.Validate.
type Record struct {
	ID        int64
	Zone      string
	Name      string
	Type      string
	TTL       uint32
	Value     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Spec is a zone to create or the new SOA fields of one. Empty or zero
// fields take the defaults of rr.ValidateZone on create and keep the
// current value on update.
type Spec struct {
	Name       string
	PrimaryNS  string
	AdminEmail string
	Refresh    uint32
	Retry      uint32
	Expire     uint32
	Minimum    uint32
	TTL        uint32
}

// Zone is the zone the spec describes (no serial, no times).
func (s Spec) Zone() Zone {
	return Zone{Name: s.Name, PrimaryNS: s.PrimaryNS, AdminEmail: s.AdminEmail,
		Refresh: s.Refresh, Retry: s.Retry, Expire: s.Expire, Minimum: s.Minimum, TTL: s.TTL}
}

// RecordSpec is a record to create or the new content of one. Name is
// relative to the zone, "@" for the apex, or absolute with a trailing dot;
// TTL 0 means the zone's default TTL.
type RecordSpec struct {
	Name  string
	Type  string
	TTL   uint32
	Value string
}

// Filter narrows a record listing; empty fields match everything.
type Filter struct {
	Name string
	Type string
}
