package rr

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
)

// Types lists the record types the record API accepts (SOA is the zone's).
var Types = []string{"A", "AAAA", "CNAME", "TXT", "SRV", "MX", "NS", "PTR"}

// MaxTTL bounds record TTLs (one week).
const MaxTTL = 7 * 24 * 3600

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", dnsdata.ErrInvalid, fmt.Sprintf(format, args...))
}

// Zone canonicalizes a zone name: lower case, trailing dot, valid labels.
func Zone(name string) (string, error) {
	z := dns.CanonicalName(strings.TrimSpace(name))
	if z == "." || z == "" {
		return "", invalid("zone: the root zone is not served")
	}
	if _, ok := dns.IsDomainName(z); !ok || strings.Contains(z, "..") || len(z) > 254 {
		return "", invalid("zone: %q is not a domain name", name)
	}
	for _, l := range dns.SplitDomainName(z) {
		if !validLabel(l, false) {
			return "", invalid("zone: %q has an invalid label %q", name, l)
		}
	}
	return z, nil
}

// validLabel allows letters, digits, hyphens (not at the ends) and, where
// wildcardOrService, a leading underscore (SRV/TXT owner names like
// _https._tcp) or a lone "*".
func validLabel(l string, wildcardOrService bool) bool {
	if l == "" || len(l) > 63 {
		return false
	}
	if wildcardOrService && l == "*" {
		return true
	}
	for i, c := range l {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(l)-1:
		case c == '_' && i == 0 && wildcardOrService:
		default:
			return false
		}
	}
	return true
}

// Name canonicalizes an owner name for zone: "@" or "" is the apex, a name
// without a trailing dot is relative to the zone, an absolute name must lie
// inside it.
func Name(zone, name string) (string, error) {
	name = strings.TrimSpace(name)
	var fq string
	switch {
	case name == "" || name == "@":
		fq = zone
	case strings.HasSuffix(name, "."):
		fq = dns.CanonicalName(name)
	default:
		fq = dns.CanonicalName(name + "." + zone)
	}
	if !dns.IsSubDomain(zone, fq) {
		return "", invalid("name: %q is not inside zone %s", name, zone)
	}
	if _, ok := dns.IsDomainName(fq); !ok || len(fq) > 254 || strings.Contains(fq, "..") {
		return "", invalid("name: %q is not a domain name", name)
	}
	for _, l := range dns.SplitDomainName(fq) {
		if !validLabel(l, true) {
			return "", invalid("name: %q has an invalid label %q", name, l)
		}
	}
	return fq, nil
}

// Validate checks and normalizes r in place for zone: canonical name, upper
// case type from Types, TTL (0 means the zone default, passed as defTTL),
// and Value parsed and re-printed in canonical presentation form.
func Validate(zone string, defTTL uint32, r *dnsdata.Record) error {
	name, err := Name(zone, r.Name)
	if err != nil {
		return err
	}
	r.Zone, r.Name = zone, name
	r.Type = strings.ToUpper(strings.TrimSpace(r.Type))
	known := false
	for _, t := range Types {
		known = known || t == r.Type
	}
	if !known {
		return invalid("type: %q is not supported (%s)", r.Type, strings.Join(Types, ", "))
	}
	if r.TTL == 0 {
		r.TTL = defTTL
	}
	if r.TTL > MaxTTL {
		return invalid("ttl: %d exceeds the maximum %d", r.TTL, MaxTTL)
	}
	if r.Type == "CNAME" && r.Name == zone {
		return invalid("name: a CNAME cannot be at the zone apex (the apex has SOA and NS)")
	}
	value := strings.TrimSpace(r.Value)
	if value == "" || len(value) > 4000 || strings.ContainsAny(value, "\n\r") || strings.Contains(value, ";") && r.Type != "TXT" {
		return invalid("value: %q is not a valid %s value", r.Value, r.Type)
	}
	if r.Type == "TXT" && !strings.HasPrefix(value, `"`) {
		// Plain text is one string; quote it so spaces survive.
		value = quoteTXT(value)
	}
	// Parse with the zone as origin, so a target written without a trailing
	// dot ("www") means "www.<zone>" as it would in a zone file.
	zp := dns.NewZoneParser(strings.NewReader(fmt.Sprintf("%s %d IN %s %s\n", r.Name, r.TTL, r.Type, value)), zone, "")
	parsed, ok := zp.Next()
	if !ok || zp.Err() != nil || parsed == nil {
		return invalid("value: %q is not a valid %s value", r.Value, r.Type)
	}
	if _, more := zp.Next(); more {
		return invalid("value: %q holds more than one record", r.Value)
	}
	if err := checkParsed(parsed); err != nil {
		return err
	}
	lowerTargets(parsed)
	r.Value = presentation(parsed)
	return nil
}

func quoteTXT(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

// checkParsed applies the rules the parser does not: targets must be
// host names, A must be IPv4 and AAAA IPv6.
func checkParsed(r dns.RR) error {
	host := func(field, h string) error {
		if h == "." {
			return nil
		}
		if _, ok := dns.IsDomainName(h); !ok {
			return invalid("value: %s %q is not a host name", field, h)
		}
		return nil
	}
	switch v := r.(type) {
	case *dns.A:
		if v.A == nil || v.A.To4() == nil {
			return invalid("value: not an IPv4 address")
		}
	case *dns.AAAA:
		if v.AAAA == nil || v.AAAA.To4() != nil {
			return invalid("value: not an IPv6 address")
		}
	case *dns.CNAME:
		return host("target", v.Target)
	case *dns.NS:
		return host("name server", v.Ns)
	case *dns.PTR:
		return host("target", v.Ptr)
	case *dns.MX:
		return host("exchange", v.Mx)
	case *dns.SRV:
		return host("target", v.Target)
	}
	return nil
}

// lowerTargets puts the host names inside RDATA in canonical (lower) case,
// so equal records compare equal.
func lowerTargets(r dns.RR) {
	switch v := r.(type) {
	case *dns.CNAME:
		v.Target = dns.CanonicalName(v.Target)
	case *dns.NS:
		v.Ns = dns.CanonicalName(v.Ns)
	case *dns.PTR:
		v.Ptr = dns.CanonicalName(v.Ptr)
	case *dns.MX:
		v.Mx = dns.CanonicalName(v.Mx)
	case *dns.SRV:
		v.Target = dns.CanonicalName(v.Target)
	}
}

// presentation is the RDATA part of r's presentation form.
func presentation(r dns.RR) string {
	full := r.String()
	hdr := r.Header().String()
	return strings.TrimSpace(strings.TrimPrefix(full, hdr))
}

// ToRR builds the dns.RR for a stored record.
func ToRR(r dnsdata.Record) (dns.RR, error) {
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", r.Name, r.TTL, r.Type, r.Value))
	if err != nil {
		return nil, fmt.Errorf("record %d (%s %s): %w", r.ID, r.Name, r.Type, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("record %d (%s %s): empty", r.ID, r.Name, r.Type)
	}
	return rr, nil
}

// SOA builds the zone's SOA record.
func SOA(z dnsdata.Zone) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: z.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.TTL},
		Ns:      z.PrimaryNS,
		Mbox:    z.AdminEmail,
		Serial:  z.Serial,
		Refresh: z.Refresh,
		Retry:   z.Retry,
		Expire:  z.Expire,
		Minttl:  z.Minimum,
	}
}

// ValidateZone canonicalizes and checks a zone's SOA fields, filling
// defaults: refresh 3600, retry 600, expire 1209600, minimum 300, ttl 300.
func ValidateZone(z *dnsdata.Zone) error {
	name, err := Zone(z.Name)
	if err != nil {
		return err
	}
	z.Name = name
	if z.PrimaryNS == "" {
		z.PrimaryNS = "ns." + name
	}
	z.PrimaryNS = dns.CanonicalName(z.PrimaryNS)
	if _, ok := dns.IsDomainName(z.PrimaryNS); !ok {
		return invalid("primary_ns: %q is not a host name", z.PrimaryNS)
	}
	if z.AdminEmail == "" {
		z.AdminEmail = "hostmaster." + name
	}
	if at := strings.Index(z.AdminEmail, "@"); at > 0 {
		// RFC 1035 mailbox: local part dots escaped, @ becomes a dot.
		local := strings.ReplaceAll(z.AdminEmail[:at], ".", `\.`)
		z.AdminEmail = local + "." + z.AdminEmail[at+1:]
	}
	z.AdminEmail = dns.CanonicalName(z.AdminEmail)
	if _, ok := dns.IsDomainName(z.AdminEmail); !ok {
		return invalid("admin_email: %q is not a mailbox", z.AdminEmail)
	}
	for _, f := range []struct {
		v    *uint32
		def  uint32
		name string
	}{{&z.Refresh, 3600, "refresh"}, {&z.Retry, 600, "retry"}, {&z.Expire, 1209600, "expire"}, {&z.Minimum, 300, "minimum"}, {&z.TTL, 300, "ttl"}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v > 2419200 {
			return invalid("%s: %d is too large (at most 4 weeks)", f.name, *f.v)
		}
	}
	return nil
}
