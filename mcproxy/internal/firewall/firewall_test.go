package firewall

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// WriteTestGeoIP writes an mmdb mapping each CIDR to a country code.
func writeTestGeoIP(t *testing.T, networks map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Test-Country", IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, country := range networks {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(country)}}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	geo := writeTestGeoIP(t, map[string]string{"203.0.113.0/24": "XA", "2001:db8:1::/48": "XB", "198.51.100.0/24": "XC"})
	fw, err := New(Config{GeoIPPath: geo, Rules: []route.Rule{
		{Kind: "ip", Value: "192.0.2.7"},
		{Kind: "cidr", Value: "10.1.0.0/16"},
		{Kind: "country", Value: "xa"},
		{Kind: "country", Value: "XB"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	cases := []struct {
		addr   string
		reason string
	}{
		{"192.0.2.7", ReasonIP},
		{"::ffff:192.0.2.7", ReasonIP},
		{"192.0.2.8", ""},
		{"10.1.200.3", ReasonCIDR},
		{"10.2.0.1", ""},
		{"203.0.113.9", ReasonCountry},
		{"2001:db8:1::5", ReasonCountry},
		{"198.51.100.1", ""},
		{"127.0.0.1", ""},
	}
	for _, tc := range cases {
		d := fw.Check(netip.MustParseAddr(tc.addr))
		if d.Blocked != (tc.reason != "") || d.Reason != tc.reason {
			t.Errorf("%s: %+v, want reason %q", tc.addr, d, tc.reason)
		}
	}
	if c := fw.Country(netip.MustParseAddr("198.51.100.1")); c != "XC" {
		t.Errorf("country = %q", c)
	}

	if err := fw.SetRules([]route.Rule{{Kind: "cidr", Value: "192.0.2.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if d := fw.Check(netip.MustParseAddr("10.1.200.3")); d.Blocked {
		t.Errorf("old rule still applies: %+v", d)
	}
	if d := fw.Check(netip.MustParseAddr("192.0.2.8")); d.Reason != ReasonCIDR {
		t.Errorf("new rule not applied: %+v", d)
	}
	if err := fw.SetRules([]route.Rule{{Kind: "cidr", Value: "nonsense"}}); err == nil {
		t.Error("bad rule accepted")
	}
}

func TestCountryNeedsDatabase(t *testing.T) {
	if _, err := New(Config{Rules: []route.Rule{{Kind: "country", Value: "XA"}}}); err == nil {
		t.Fatal("country rule without a database accepted")
	}
	if _, err := New(Config{GeoIPPath: filepath.Join(t.TempDir(), "missing.mmdb")}); err == nil {
		t.Fatal("missing database accepted")
	}
}

func TestRateLimit(t *testing.T) {
	fw, err := New(Config{RatePerSecond: 2, Burst: 3})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	fw.now = func() time.Time { return now }
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if d := fw.Check(a); d.Blocked {
			t.Fatalf("connection %d blocked: %+v", i, d)
		}
	}
	if d := fw.Check(a); d.Reason != ReasonRate {
		t.Fatalf("4th connection: %+v", d)
	}
	if d := fw.Check(b); d.Blocked {
		t.Fatal("other address limited")
	}
	now = now.Add(500 * time.Millisecond)
	if d := fw.Check(a); d.Blocked {
		t.Fatal("token not refilled")
	}
	if d := fw.Check(a); !d.Blocked {
		t.Fatal("more than the rate allowed")
	}
	now = now.Add(time.Hour)
	fw.Check(b)
	if len(fw.buckets) != 1 {
		t.Fatalf("idle buckets not swept: %d left", len(fw.buckets))
	}
}

// TestRateKey: the rate limit counts an IPv4 address or an IPv6 /64 (by
// default) as one client; IPv4-mapped addresses count as IPv4.
func TestRateKey(t *testing.T) {
	def, err := New(Config{RatePerSecond: 1})
	if err != nil {
		t.Fatal(err)
	}
	wide, err := New(Config{RatePerSecond: 1, RateIPv4Prefix: 24, RateIPv6Prefix: 48})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fw         *Firewall
		addr, want string
	}{
		{def, "192.0.2.7", "192.0.2.7/32"},
		{def, "::ffff:192.0.2.7", "192.0.2.7/32"},
		{def, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{def, "2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{def, "fe80::1%eth0", "fe80::/64"},
		{wide, "192.0.2.7", "192.0.2.0/24"},
		{wide, "2001:db8:1:2::1", "2001:db8:1::/48"},
	} {
		if got := tc.fw.RateKey(netip.MustParseAddr(tc.addr)).String(); got != tc.want {
			t.Errorf("RateKey(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	for _, cfg := range []Config{
		{RateIPv4Prefix: 33}, {RateIPv4Prefix: -1}, {RateIPv6Prefix: 129}, {RateIPv6Prefix: -64},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestRateLimitIPv6Prefix: rotating through source addresses of one /64
// does not get a client fresh buckets; another /64 is another client.
func TestRateLimitIPv6Prefix(t *testing.T) {
	fw, err := New(Config{RatePerSecond: 1, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	fw.now = func() time.Time { return now }
	for i, a := range []string{"2001:db8:5:6::1", "2001:db8:5:6:ffff:ffff:ffff:fffe"} {
		if d := fw.Check(netip.MustParseAddr(a)); d.Blocked {
			t.Fatalf("connection %d from %s blocked: %+v", i, a, d)
		}
	}
	d := fw.Check(netip.MustParseAddr("2001:db8:5:6:1234::99"))
	if d.Reason != ReasonRate || d.Detail != "2001:db8:5:6::/64" {
		t.Fatalf("third address in the /64: %+v; want limited as 2001:db8:5:6::/64", d)
	}
	if d := fw.Check(netip.MustParseAddr("2001:db8:5:7::1")); d.Blocked {
		t.Fatalf("next /64 limited: %+v", d)
	}
	// IPv4 stays per address.
	for _, a := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		if d := fw.Check(netip.MustParseAddr(a)); d.Blocked {
			t.Fatalf("%s limited: %+v", a, d)
		}
	}
}
