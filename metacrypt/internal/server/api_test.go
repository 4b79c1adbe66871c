package server_test

import (
	"crypto"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/restclient"
	"git.metacircular.net/metacircular/metacrypt/client"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// outcome is a transport-neutral answer, so one table checks both APIs.
type outcome string

const (
	ok        outcome = "ok"
	invalid   outcome = "invalid"
	unauth    outcome = "unauth"
	forbidden outcome = "forbidden"
	other     outcome = "other"
)

func restOutcome(err error) outcome {
	if err == nil {
		return ok
	}
	switch restclient.StatusOf(err) {
	case http.StatusBadRequest:
		return invalid
	case http.StatusUnauthorized:
		return unauth
	case http.StatusForbidden:
		return forbidden
	}
	return other
}

func grpcOutcome(err error) outcome {
	if err == nil {
		return ok
	}
	switch status.Code(err) {
	case codes.InvalidArgument:
		return invalid
	case codes.Unauthenticated:
		return unauth
	case codes.PermissionDenied:
		return forbidden
	}
	return other
}

type issueCase struct {
	name   string
	caller string
	issuer string
	cn     string
	dns    []string
	ips    []string
	want   outcome
	// mention is a text the refusal must contain (the SAN it names).
	mention string
}

// policyMatrix is what the platform's policy (harness.ready) allows.
var policyMatrix = []issueCase{
	{"agent: a service name", agent, "services", "", []string{svcName("mcq")}, nil, ok, ""},
	{"agent: case and trailing dot", agent, "services", "", []string{"MCQ.SVC.MCP.TEST."}, nil, ok, ""},
	{"agent: wrong suffix", agent, "services", "", []string{"mcq.svc.evil.net"}, nil, forbidden, "mcq.svc.evil.net"},
	{"agent: bare suffix", agent, "services", "", []string{"svc." + domain}, nil, forbidden, "svc." + domain},
	{"agent: deeper label", agent, "services", "", []string{"a.b.svc." + domain}, nil, forbidden, "a.b.svc." + domain},
	{"agent: suffix inside a foreign name", agent, "services", "", []string{svcName("x") + ".evil.net"}, nil, forbidden, ".evil.net"},
	{"agent: wildcard", agent, "services", "", []string{"*.svc." + domain}, nil, forbidden, "*.svc." + domain},
	{"agent: one bad SAN of two", agent, "services", "", []string{svcName("ok"), "www.example.net"}, nil, forbidden, "www.example.net"},
	{"agent: common name outside", agent, "services", "www.example.net", []string{svcName("ok")}, nil, forbidden, "www.example.net"},
	{"agent: IP SAN in range", agent, "services", "", []string{svcName("ip")}, []string{"10.1.2.3"}, ok, ""},
	{"agent: IP SAN out of range", agent, "services", "", []string{svcName("ip")}, []string{"192.168.1.1"}, forbidden, "192.168.1.1"},
	{"agent: IP SAN alone, v6", agent, "services", "", nil, []string{"fd00::1"}, forbidden, "fd00::1"},
	{"agent: issuer not granted", agent, "infra", "", []string{svcName("mcq")}, nil, forbidden, "issuer/infra"},
	{"edge: public name", edge, "services", "", []string{"www.example.net"}, nil, ok, ""},
	{"edge: public apex", edge, "services", "", []string{"example.net"}, nil, ok, ""},
	{"edge: look-alike domain", edge, "services", "", []string{"evilexample.net"}, nil, forbidden, "evilexample.net"},
	{"edge: a platform name", edge, "services", "", []string{svcName("mcq")}, nil, forbidden, svcName("mcq")},
	{"edge: the platform domain", edge, "services", "", []string{domain}, nil, forbidden, domain},
	{"user: no issue rule", alice, "services", "", []string{svcName("mcq")}, nil, forbidden, ""},
	{"guest: nothing", gina, "services", "", []string{svcName("mcq")}, nil, forbidden, ""},
	{"no token", "", "services", "", []string{svcName("mcq")}, nil, unauth, ""},
	{"invalid name", agent, "services", "", []string{"bad_name.svc." + domain}, nil, invalid, "dns_names[0]"},
	{"no names", agent, "services", "", nil, nil, invalid, "dns_names"},
	{"admin bypasses the limits", admin, "infra", "", []string{"anything.example.org"}, nil, ok, ""},
}

// TestPolicyMatrix issues every case of the matrix over REST and over
// gRPC: the same outcome on both faces, refusals naming the refused
// name, and nothing recorded for a refused request.
func TestPolicyMatrix(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	count := func() int {
		l, err := h.client(t, admin).Certificates(ctx, "pki", client.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	ca := mcv1.NewCAServiceClient(h.conn)
	for _, c := range policyMatrix {
		for _, face := range []string{"rest", "grpc"} {
			before := count()
			var got outcome
			var err error
			switch face {
			case "rest":
				body := map[string]any{"dns_names": c.dns, "ip_addresses": c.ips, "common_name": c.cn}
				var out struct {
					ChainPEM string `json:"chain_pem"`
				}
				err = h.restClient(t, c.caller).Do(ctx, http.MethodPost, "/v1/pki/pki/issue/"+c.issuer, body, &out)
				got = restOutcome(err)
				if err == nil && !strings.Contains(out.ChainPEM, "BEGIN CERTIFICATE") {
					t.Errorf("%s over REST: no chain", c.name)
				}
			case "grpc":
				_, err = ca.Issue(as(ctx, c.caller), &mcv1.IssueRequest{Mount: "pki", Issuer: c.issuer, CommonName: c.cn, DnsNames: c.dns, IpAddresses: c.ips})
				got = grpcOutcome(err)
			}
			if got != c.want {
				t.Errorf("%s over %s: %s (%v), want %s", c.name, face, got, err, c.want)
				continue
			}
			if c.mention != "" && (err == nil || !strings.Contains(err.Error(), c.mention)) {
				t.Errorf("%s over %s: error %v does not name %q", c.name, face, err, c.mention)
			}
			after := count()
			if (got == ok) != (after == before+1) {
				t.Errorf("%s over %s: %d certificates before, %d after", c.name, face, before, after)
			}
		}
	}
}

// TestGenericEngineRequest runs CA operations through POST
// /v1/engine/request and the EngineService: the same policy as the typed
// API, strict data, and the path naming the resource.
func TestGenericEngineRequest(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	type resp struct {
		Data map[string]any `json:"data"`
	}
	call := func(caller string, body map[string]any) (map[string]any, error) {
		var out resp
		err := h.restClient(t, caller).Do(ctx, http.MethodPost, "/v1/engine/request", body, &out)
		return out.Data, err
	}
	data, err := call(agent, map[string]any{"mount": "pki", "operation": "issue", "path": "issuer/services",
		"data": map[string]any{"dns_names": []string{svcName("generic")}, "ttl": "7d"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := data["certificate"].(map[string]any)
	serial, _ := cert["serial"].(string)
	chain, _ := data["chain_pem"].(string)
	if serial == "" || !strings.Contains(chain, "BEGIN CERTIFICATE") || data["private_key_pem"] == "" {
		t.Fatalf("generic issue: %v", data)
	}
	for _, c := range []struct {
		name   string
		caller string
		body   map[string]any
		want   outcome
		field  string
	}{
		{"foreign name", agent, map[string]any{"mount": "pki", "operation": "issue", "path": "issuer/services",
			"data": map[string]any{"dns_names": []string{"www.example.net"}}}, forbidden, "www.example.net"},
		{"unknown operation", agent, map[string]any{"mount": "pki", "operation": "explode"}, invalid, "operation"},
		{"unknown data field", agent, map[string]any{"mount": "pki", "operation": "issue", "path": "issuer/services",
			"data": map[string]any{"dns_names": []string{svcName("x")}, "colour": "red"}}, invalid, "colour"},
		{"path and data disagree", agent, map[string]any{"mount": "pki", "operation": "issue", "path": "issuer/services",
			"data": map[string]any{"issuer": "infra", "dns_names": []string{svcName("x")}}}, invalid, "path"},
		{"no mount", agent, map[string]any{"operation": "list"}, invalid, "mount"},
		{"no token", "", map[string]any{"mount": "pki", "operation": "list"}, unauth, ""},
		{"guest lists", gina, map[string]any{"mount": "pki", "operation": "list"}, forbidden, "certs"},
	} {
		_, err := call(c.caller, c.body)
		if got := restOutcome(err); got != c.want || (c.field != "" && !strings.Contains(err.Error(), c.field)) {
			t.Errorf("%s: %s (%v), want %s naming %q", c.name, got, err, c.want, c.field)
		}
	}
	// The same over gRPC through the public client: get, revoke, list, crl.
	ag := h.client(t, agent)
	got, err := ag.Request(ctx, "pki", "get", "cert/"+serial, nil)
	gotCert, _ := got["certificate"].(map[string]any)
	if err != nil || gotCert["serial"] != serial {
		t.Fatalf("generic get: %v %v", got, err)
	}
	if _, err := ag.Request(ctx, "pki", "revoke", "cert/"+serial, map[string]any{"reason": "superseded"}); err != nil {
		t.Fatal(err)
	}
	crl, err := h.client(t, admin).Request(ctx, "pki", "crl", "issuer/services", nil)
	if err != nil || !strings.Contains(strings.Join(toStrings(crl["revoked"]), ","), serial) {
		t.Fatalf("generic crl: %v %v", crl, err)
	}
	list, err := h.client(t, alice).Request(ctx, "pki", "list", "", map[string]any{"status": "revoked"})
	if certs, _ := list["certificates"].([]any); err != nil || len(certs) != 1 {
		t.Fatalf("generic list as a reader: %v %v", list, err)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestCertificateLifecycleREST drives the typed REST API: issue, get,
// search (by name, by requester, expiring), renew (same key, new serial,
// renewed_from), revoke with a reason, and the CRL as JSON.
func TestCertificateLifecycleREST(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	rc := h.restClient(t, agent)
	type cert struct {
		Serial           string   `json:"serial"`
		DNSNames         []string `json:"dns_names"`
		Revoked          bool     `json:"revoked"`
		RevocationReason string   `json:"revocation_reason"`
	}
	type issued struct {
		Certificate struct {
			Serial       string `json:"serial"`
			RequestedBy  string `json:"requested_by"`
			RenewedFrom  string `json:"renewed_from"`
			CertPEMField string `json:"certificate_pem"`
		} `json:"certificate"`
		CertificatePEM string `json:"certificate_pem"`
		PrivateKeyPEM  string `json:"private_key_pem"`
	}
	var first issued
	if err := rc.Do(ctx, http.MethodPost, "/v1/pki/pki/issue/services", map[string]any{"dns_names": []string{svcName("life")}, "ttl": "10d"}, &first); err != nil {
		t.Fatal(err)
	}
	if first.Certificate.RequestedBy != agent || first.PrivateKeyPEM == "" {
		t.Fatalf("issued: %+v", first.Certificate)
	}
	var list struct {
		Certificates []struct {
			Serial string `json:"serial"`
		} `json:"certificates"`
	}
	for _, q := range []string{"?name=" + svcName("life"), "?requested_by=" + agent, "?expiring_within=11d", "?status=valid&issuer=services"} {
		list.Certificates = nil
		if err := rc.Do(ctx, http.MethodGet, "/v1/pki/pki/certs"+q, nil, &list); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(list.Certificates) != 1 || list.Certificates[0].Serial != first.Certificate.Serial {
			t.Fatalf("search %s: %+v", q, list)
		}
	}
	list.Certificates = nil
	if err := rc.Do(ctx, http.MethodGet, "/v1/pki/pki/certs?expiring_within=9d", nil, &list); err != nil || len(list.Certificates) != 0 {
		t.Fatalf("expiring within 9d: %+v %v", list, err)
	}
	if err := rc.Do(ctx, http.MethodGet, "/v1/pki/pki/certs?expiring_within=soon", nil, &list); restOutcome(err) != invalid || !strings.Contains(err.Error(), "expiring_within") {
		t.Fatalf("bad duration: %v", err)
	}
	var renewed issued
	if err := rc.Do(ctx, http.MethodPost, "/v1/pki/pki/certs/"+first.Certificate.Serial+"/renew", map[string]any{"ttl": "20d"}, &renewed); err != nil {
		t.Fatal(err)
	}
	if renewed.Certificate.RenewedFrom != first.Certificate.Serial || renewed.Certificate.Serial == first.Certificate.Serial || renewed.PrivateKeyPEM != "" {
		t.Fatalf("renewed: %+v", renewed.Certificate)
	}
	newKey, ok := parseCert(t, renewed.CertificatePEM).PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !newKey.Equal(parseCert(t, first.CertificatePEM).PublicKey) {
		t.Fatal("renewal changed the key")
	}
	var revoked cert
	if err := rc.Do(ctx, http.MethodPost, "/v1/pki/pki/certs/"+first.Certificate.Serial+"/revoke", map[string]any{"reason": "superseded"}, &revoked); err != nil {
		t.Fatal(err)
	}
	if !revoked.Revoked || revoked.RevocationReason != "superseded" {
		t.Fatalf("revoked: %+v", revoked)
	}
	if err := rc.Do(ctx, http.MethodPost, "/v1/pki/pki/certs/"+first.Certificate.Serial+"/renew", map[string]any{}, nil); restclient.StatusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("renew a revoked certificate: %v", err)
	}
	var crl struct {
		Number  int64    `json:"number"`
		Revoked []string `json:"revoked"`
		CRLPEM  string   `json:"crl_pem"`
	}
	if err := h.restClient(t, admin).Do(ctx, http.MethodGet, "/v1/pki/pki/issuers/services/crl", nil, &crl); err != nil {
		t.Fatal(err)
	}
	if len(crl.Revoked) != 1 || crl.Revoked[0] != first.Certificate.Serial || crl.Number < 2 || !strings.Contains(crl.CRLPEM, "X509 CRL") {
		t.Fatalf("crl: %+v", crl)
	}
}

// TestBadInputWritesNothing sends invalid requests and checks each is a
// 400 naming the field, and that nothing changed.
func TestBadInputWritesNothing(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	ad := h.restClient(t, admin)
	snapshot := func() (int, int, int, int) {
		var is struct{ Issuers []any }
		var ru struct{ Rules []any }
		var li struct{ Limits []any }
		var mo struct{ Mounts []any }
		for _, g := range []struct {
			p string
			v any
		}{{"/v1/pki/pki/issuers", &is}, {"/v1/policy/rules", &ru}, {"/v1/policy/limits", &li}, {"/v1/sys/mounts", &mo}} {
			if err := ad.Do(ctx, http.MethodGet, g.p, nil, g.v); err != nil {
				t.Fatal(err)
			}
		}
		return len(is.Issuers), len(ru.Rules), len(li.Limits), len(mo.Mounts)
	}
	i0, r0, l0, m0 := snapshot()
	for _, c := range []struct {
		method, path string
		body         any
		field        string
	}{
		{"POST", "/v1/pki/pki/issuers", map[string]any{"name": "edge", "key_types": []string{"dsa-1024"}}, "key_types[0]"},
		{"POST", "/v1/pki/pki/issuers", map[string]any{"name": "edge", "max_ttl": "10d", "default_ttl": "20d"}, "default_ttl"},
		{"POST", "/v1/pki/pki/issuers", map[string]any{"name": "edge", "permitted_dns_domains": []string{"bad domain"}}, "permitted_dns_domains[0]"},
		{"POST", "/v1/pki/pki/issuers", map[string]any{"name": "Root"}, "name"},
		{"POST", "/v1/pki/pki/issuers", map[string]any{"name": "edge", "key_type": "rsa-2048"}, "key_type"},
		{"POST", "/v1/policy/rules", map[string]any{"effect": "allow", "operations": []string{"destroy"}}, "rule.operations[0]"},
		{"POST", "/v1/policy/limits", map[string]any{"effect": "allow", "names": []string{"*.*.x"}}, "limit.names[0]"},
		{"POST", "/v1/policy/limits", map[string]any{"effect": "allow", "ip_ranges": []string{"10.0.0.1"}}, "limit.ip_ranges[0]"},
		{"POST", "/v1/sys/mounts", map[string]any{"name": "PKI", "type": "ca"}, "name"},
		{"POST", "/v1/sys/mounts", map[string]any{"name": "pki2", "type": "kv"}, "type"},
		{"POST", "/v1/pki/pki/issue/services", map[string]any{"dns_names": []string{svcName("a")}, "ttl": "400d"}, "ttl"},
		{"POST", "/v1/pki/pki/issue/services", map[string]any{"dns_names": []string{svcName("a")}, "profile": "ca"}, "profile"},
		{"POST", "/v1/pki/pki/issue/clients", map[string]any{"dns_names": []string{svcName("a")}}, "profile"},
		{"POST", "/v1/pki/pki/certs/zz/revoke", map[string]any{}, "serial"},
		{"POST", "/v1/pki/pki/certs/01/revoke", map[string]any{"reason": "bored"}, "reason"},
	} {
		err := ad.Do(ctx, c.method, c.path, c.body, nil)
		if restOutcome(err) != invalid || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s %s %v: %v, want 400 naming %s", c.method, c.path, c.body, err, c.field)
		}
	}
	if i, r, l, m := snapshot(); i != i0 || r != r0 || l != l0 || m != m0 {
		t.Fatalf("bad input changed things: issuers %d→%d rules %d→%d limits %d→%d mounts %d→%d", i0, i, r0, r, l0, l, m0, m)
	}
	var out map[string]any
	if err := ad.Do(ctx, http.MethodGet, "/v1/pki/pki/certs/01", nil, &out); restclient.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("unknown serial: %v", err)
	}
}
