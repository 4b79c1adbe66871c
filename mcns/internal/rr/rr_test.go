package rr

import (
	"errors"
	"testing"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
)

func TestValidate(t *testing.T) {
	const zone = "svc.mcp.metacircular.net."
	for _, tc := range []struct {
		name, typ, value string
		wantName         string
		wantValue        string
	}{
		{"mcias", "a", "10.0.0.5", "mcias.svc.mcp.metacircular.net.", "10.0.0.5"},
		{"MCIAS.svc.mcp.metacircular.net.", "AAAA", "2001:DB8::1", "mcias.svc.mcp.metacircular.net.", "2001:db8::1"},
		{"@", "MX", "10 Mail.Example.", zone, "10 mail.example."},
		{"www", "CNAME", "web.svc.mcp.metacircular.net.", "www.svc.mcp.metacircular.net.", "web.svc.mcp.metacircular.net."},
		{"_https._tcp", "SRV", "10 5 443 mcias.svc.mcp.metacircular.net.", "_https._tcp.svc.mcp.metacircular.net.", "10 5 443 mcias.svc.mcp.metacircular.net."},
		{"note", "TXT", "hello world", "note.svc.mcp.metacircular.net.", `"hello world"`},
		{"*", "A", "10.0.0.9", "*.svc.mcp.metacircular.net.", "10.0.0.9"},
		{"alias", "CNAME", "www", "alias.svc.mcp.metacircular.net.", "www.svc.mcp.metacircular.net."},
		{"@", "MX", "20 mail", zone, "20 mail.svc.mcp.metacircular.net."},
	} {
		r := dnsdata.Record{Name: tc.name, Type: tc.typ, Value: tc.value}
		if err := Validate(zone, 300, &r); err != nil {
			t.Errorf("%s %s %s: %v", tc.name, tc.typ, tc.value, err)
			continue
		}
		if r.Name != tc.wantName || r.Value != tc.wantValue || r.TTL != 300 {
			t.Errorf("%s %s: got %q %q ttl %d", tc.name, tc.typ, r.Name, r.Value, r.TTL)
		}
		if _, err := ToRR(r); err != nil {
			t.Errorf("ToRR(%+v): %v", r, err)
		}
	}
	for _, tc := range []struct{ name, typ, value string }{
		{"x", "A", "10.0.0.300"},
		{"x", "A", "2001:db8::1"},
		{"x", "AAAA", "10.0.0.1"},
		{"x", "MX", "mail.example."},
		{"x", "SRV", "10 5 mcias."},
		{"x", "SOA", "ns. host. 1 2 3 4 5"},
		{"x", "HINFO", "a b"},
		{"outside.example.", "A", "10.0.0.1"},
		{"bad_label", "A", "10.0.0.1"},
		{"@", "CNAME", "elsewhere.example."},
		{"x", "A", ""},
		{"x", "A", "10.0.0.1; injected"},
		{"x", "TXT", "line one\n$INCLUDE /etc/passwd"},
	} {
		r := dnsdata.Record{Name: tc.name, Type: tc.typ, Value: tc.value}
		if err := Validate(zone, 300, &r); !errors.Is(err, dnsdata.ErrInvalid) {
			t.Errorf("%s %s %q accepted or wrong error: %v", tc.name, tc.typ, tc.value, err)
		}
	}
	r := dnsdata.Record{Name: "x", Type: "A", Value: "10.0.0.1", TTL: MaxTTL + 1}
	if err := Validate(zone, 300, &r); !errors.Is(err, dnsdata.ErrInvalid) {
		t.Errorf("huge ttl: %v", err)
	}
}

func TestValidateZone(t *testing.T) {
	z := dnsdata.Zone{Name: "MCP.Metacircular.NET", AdminEmail: "kyle.isom@example.net"}
	if err := ValidateZone(&z); err != nil {
		t.Fatal(err)
	}
	if z.Name != "mcp.metacircular.net." || z.PrimaryNS != "ns.mcp.metacircular.net." || z.AdminEmail != `kyle\.isom.example.net.` || z.Minimum != 300 {
		t.Fatalf("zone: %+v", z)
	}
	for _, bad := range []string{".", "", "a..b", "bad_zone.example"} {
		z := dnsdata.Zone{Name: bad}
		if err := ValidateZone(&z); !errors.Is(err, dnsdata.ErrInvalid) {
			t.Errorf("zone %q: %v", bad, err)
		}
	}
}
