package route

import "testing"

func TestTableLookupAndValidation(t *testing.T) {
	tab, err := NewTable([]Route{
		{Listener: "https", Hostname: "MCIAS.Svc.MCP.Test.", Mode: "L7", Backend: "127.0.0.1:8443", TLSCert: "c.pem", TLSKey: "k.pem"},
		{Listener: "https", Hostname: "raw.svc.mcp.test", Mode: "l4", Backend: "backend.internal:443"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := tab.Lookup("https", "mcias.svc.MCP.test"); !ok || r.Mode != L7 {
		t.Fatalf("case-insensitive lookup: %+v %v", r, ok)
	}
	if _, ok := tab.Lookup("other", "mcias.svc.mcp.test"); ok {
		t.Fatal("route leaked to another listener")
	}
	if _, ok := tab.Lookup("https", "evil.svc.mcp.test"); ok {
		t.Fatal("unknown SNI matched")
	}
	// A fully qualified SNI name (trailing dot) is the same name.
	if r, ok := tab.Lookup("https", "RAW.svc.mcp.test."); !ok || r.Mode != L4 {
		t.Fatalf("lookup with a trailing dot: %+v %v", r, ok)
	}
	if _, ok := tab.Lookup("https", "raw.svc.mcp.test.."); ok {
		t.Fatal("two trailing dots matched")
	}
	if tab.Len() != 2 || tab.Routes()[0].Hostname != "mcias.svc.mcp.test" {
		t.Fatalf("routes: %+v", tab.Routes())
	}
	for name, bad := range map[string][]Route{
		"duplicate":     {{Listener: "a", Hostname: "x", Mode: L4, Backend: "h:1"}, {Listener: "a", Hostname: "X.", Mode: L4, Backend: "h:2"}},
		"no listener":   {{Hostname: "x", Mode: L4, Backend: "h:1"}},
		"bad mode":      {{Listener: "a", Hostname: "x", Mode: "l5", Backend: "h:1"}},
		"bad backend":   {{Listener: "a", Hostname: "x", Mode: L4, Backend: "nohostport"}},
		"l7 no cert":    {{Listener: "a", Hostname: "x", Mode: L7, Backend: "h:1"}},
		"l4 with cert":  {{Listener: "a", Hostname: "x", Mode: L4, Backend: "h:1", TLSCert: "c"}},
		"wildcard host": {{Listener: "a", Hostname: "*.x", Mode: L4, Backend: "h:1"}},
		"empty label":   {{Listener: "a", Hostname: "x..y", Mode: L4, Backend: "h:1"}},
		"two dots":      {{Listener: "a", Hostname: "x..", Mode: L4, Backend: "h:1"}},
		"l4 protocol":   {{Listener: "a", Hostname: "x", Mode: L4, Backend: "h:1", BackendProtocol: HTTP1}},
		"bad protocol":  {{Listener: "a", Hostname: "x", Mode: L7, Backend: "h:1", TLSCert: "c", TLSKey: "k", BackendProtocol: "h3"}},
		"h2c over tls":  {{Listener: "a", Hostname: "x", Mode: L7, Backend: "h:1", TLSCert: "c", TLSKey: "k", BackendProtocol: H2C, BackendTLS: true}},
	} {
		if _, err := NewTable(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	for _, tc := range []struct{ kind, value, want string }{
		{"IP", "::ffff:10.0.0.1", "10.0.0.1"},
		{"cidr", "10.1.2.3/16", "10.1.0.0/16"},
		{"country", "nz", "NZ"},
	} {
		r := Rule{Kind: tc.kind, Value: tc.value}
		if err := r.Validate(); err != nil || r.Value != tc.want {
			t.Errorf("%s %s: %q %v", tc.kind, tc.value, r.Value, err)
		}
	}
	for _, r := range []Rule{{Kind: "ip", Value: "10.0.0"}, {Kind: "cidr", Value: "10.0.0.0"}, {Kind: "country", Value: "NZL"}, {Kind: "asn", Value: "1"}} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

func TestBackendProtocol(t *testing.T) {
	for _, tc := range []struct {
		in   Route
		want string
	}{
		{Route{Mode: "L7", BackendProtocol: ""}, HTTP1},
		{Route{Mode: L7, BackendProtocol: " H2C "}, H2C},
		{Route{Mode: L7, BackendProtocol: "Auto", BackendTLS: true}, Auto},
		{Route{Mode: L7, BackendProtocol: "auto"}, Auto},
		{Route{Mode: L4}, ""},
	} {
		r := tc.in
		r.Listener, r.Hostname, r.Backend = "https", "x.test", "h:1"
		if r.Mode != L4 {
			r.TLSCert, r.TLSKey = "c", "k"
		}
		r.Normalize()
		if err := r.Validate(); err != nil || r.BackendProtocol != tc.want {
			t.Errorf("%+v: protocol %q, %v; want %q", tc.in, r.BackendProtocol, err, tc.want)
		}
	}
	for _, tc := range []struct {
		r    Route
		want bool
	}{
		{Route{BackendProtocol: HTTP1}, false},
		{Route{BackendProtocol: HTTP1, BackendTLS: true}, false},
		{Route{BackendProtocol: H2C}, true},
		{Route{BackendProtocol: Auto}, false},
		{Route{BackendProtocol: Auto, BackendTLS: true}, true},
	} {
		if got := tc.r.SpeaksHTTP2(); got != tc.want {
			t.Errorf("%+v: SpeaksHTTP2 = %v", tc.r, got)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{"App.Test.": "app.test", "app.test": "app.test", "app.test..": "app.test.", ".": ""} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkTableLookup: the per-connection (and, on a route that changed,
// per-request) lookup; allocs/op is 0 for a lower-case name.
func BenchmarkTableLookup(b *testing.B) {
	routes := make([]Route, 0, 64)
	for i := range 64 {
		routes = append(routes, Route{Listener: "https", Hostname: "app" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example.net",
			Mode: L4, Backend: "10.0.0.1:443"})
	}
	tab, err := NewTable(routes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := tab.Lookup("https", "appqb.example.net"); !ok {
			b.Fatal("not found")
		}
	}
}
