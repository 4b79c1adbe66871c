package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/seal"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

var (
	admin = engine.Caller{Username: "admin", Roles: []string{"admin"}}
	agent = engine.Caller{Username: "mcp-agent", AccountType: "system"}
)

type fixture struct {
	svc   *Service
	b     *barrier.Barrier
	st    *store.Store
	pol   *policy.Engine
	clock *time.Time
}

// newFixture is a CA engine on a real store and barrier, unsealed, with
// mount "pki", a root, issuer "services" and the agent's policy.
func newFixture(t testing.TB, issuer IssuerRequest) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "m.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := barrier.New(st, barrier.Options{Params: seal.Params{MemoryKiB: 8192, Iterations: 1, Parallelism: 1}})
	if err := b.Init(ctx, []byte("a long unseal password")); err != nil {
		t.Fatal(err)
	}
	pol := policy.New(b.View(barrier.SysOwner))
	reg := engine.NewRegistry()
	mounts := mount.New(st, b, reg)
	now := time.Now().UTC()
	f := &fixture{b: b, st: st, pol: pol, clock: &now}
	f.svc = New(Deps{Mounts: mounts, Store: st, Authz: pol, Sealed: b.Sealed, Now: func() time.Time { return *f.clock },
		Config: Config{ExternalURL: "http://pki.test", CRLLifetime: 10 * time.Hour}})
	reg.Register(f.svc)
	if _, err := mounts.Create(ctx, "pki", Type); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GenerateRoot(ctx, admin, "pki", RootRequest{}); err != nil {
		t.Fatal(err)
	}
	if issuer.Name == "" {
		issuer.Name = "services"
	}
	if _, err := f.svc.CreateIssuer(ctx, admin, "pki", issuer); err != nil {
		t.Fatal(err)
	}
	if _, err := pol.CreateRule(ctx, policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"mcp-agent"}},
		Operations: []string{"*"}, Resources: []string{"issuer/services", "certs"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pol.CreateLimit(ctx, policy.Limit{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"mcp-agent"}},
		Names: []string{"*.svc.mcp.test"}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func newCSR(t testing.TB, names ...string) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// TestIssuerSeam drives the engine through pki.Issuer, as the ACME server
// will: Authorize writes nothing and applies the limits, SignCSR returns
// a full chain recorded under the caller, Lookup works while sealed,
// Revoke applies the policy and RevokeByKey needs the certificate's key.
func TestIssuerSeam(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, IssuerRequest{})
	var iss pki.Issuer = f.svc
	if err := iss.Authorize(ctx, agent, "pki", "services", pki.Names{DNS: []string{"a.svc.mcp.test"}}); err != nil {
		t.Fatal(err)
	}
	err := iss.Authorize(ctx, agent, "pki", "services", pki.Names{DNS: []string{"a.svc.mcp.test", "svc.mcp.test"}})
	if !errors.Is(err, engine.ErrDenied) || !strings.Contains(err.Error(), "svc.mcp.test") {
		t.Fatalf("bare suffix: %v", err)
	}
	if err := iss.Authorize(ctx, agent, "pki", "services", pki.Names{IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("IP without a range: %v", err)
	}
	if list, _ := f.st.Certificates(ctx, mountID(t, f), "pki", pki.Filter{Limit: 10, Now: time.Now()}); len(list) != 1 {
		t.Fatalf("authorize wrote: %d records (want the issuer's only)", len(list))
	}
	csr := newCSR(t, "acme.svc.mcp.test")
	out, err := iss.SignCSR(ctx, agent, "pki", "services", csr, pki.SignOptions{TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if out.PrivateKeyPEM != "" || strings.Count(out.ChainPEM, "BEGIN CERTIFICATE") != 2 || out.Certificate.RequestedBy != "mcp-agent" {
		t.Fatalf("signed: %+v", out.Certificate)
	}
	if _, err := iss.SignCSR(ctx, agent, "pki", "services", newCSR(t, "www.example.net"), pki.SignOptions{}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("foreign CSR: %v", err)
	}
	f.b.Seal()
	got, err := iss.Lookup(ctx, "pki", strings.ToUpper(out.Certificate.Serial))
	if err != nil || got.Serial != out.Certificate.Serial {
		t.Fatalf("lookup while sealed: %+v %v", got, err)
	}
	if _, err := iss.SignCSR(ctx, agent, "pki", "services", csr, pki.SignOptions{}); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sign while sealed: %v", err)
	}
	if err := f.b.Unseal(ctx, []byte("a long unseal password")); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := iss.RevokeByKey(ctx, "pki", out.Certificate.Serial, other.Public(), pki.KeyCompromise); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("revoke with another key: %v", err)
	}
	if err := iss.RevokeByKey(ctx, "pki", out.Certificate.Serial, csr.PublicKey, pki.KeyCompromise); err != nil {
		t.Fatal(err)
	}
	if err := iss.Revoke(ctx, agent, "pki", out.Certificate.Serial, pki.Superseded); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("revoke twice: %v", err)
	}
	crl, err := f.svc.GetCRL(ctx, admin, "pki", "services")
	if err != nil || len(crl.Revoked) != 1 || crl.Revoked[0] != out.Certificate.Serial {
		t.Fatalf("crl: %+v %v", crl, err)
	}
}

func mountID(t *testing.T, f *fixture) string {
	t.Helper()
	m, err := f.st.Mount(t.Context(), "pki")
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestOCSPResponses checks every kind of answer the responder gives.
func TestOCSPResponses(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, IssuerRequest{})
	is, err := f.svc.Issue(ctx, agent, "pki", IssueRequest{Issuer: "services", DNSNames: []string{"o.svc.mcp.test"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := parsePEM(t, is.CertificatePEM)
	issuer := parsePEM(t, is.CAChainPEM)
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	status := func(raw []byte) (int, error) {
		der, _ := f.svc.OCSP(ctx, "pki", raw)
		r, err := ocsp.ParseResponseForCert(der, leaf, issuer)
		if err != nil {
			return -1, err
		}
		return r.Status, nil
	}
	if s, err := status(req); err != nil || s != ocsp.Good {
		t.Fatalf("good: %d %v", s, err)
	}
	if err := f.svc.Revoke(ctx, agent, "pki", is.Certificate.Serial, pki.KeyCompromise); err != nil {
		t.Fatal(err)
	}
	der, until := f.svc.OCSP(ctx, "pki", req)
	r, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil || r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise || until.IsZero() {
		t.Fatalf("revoked: %+v %v", r, err)
	}
	// An unknown serial under a known issuer.
	unknown := *leaf
	unknown.SerialNumber = big.NewInt(424242)
	req2, _ := ocsp.CreateRequest(&unknown, issuer, nil)
	der, _ = f.svc.OCSP(ctx, "pki", req2)
	if r, err := ocsp.ParseResponse(der, issuer); err != nil || r.Status != ocsp.Unknown {
		t.Fatalf("unknown: %+v %v", r, err)
	}
	for name, c := range map[string]struct {
		raw   []byte
		mount string
		want  []byte
	}{
		"malformed":      {[]byte("not ocsp"), "pki", ocsp.MalformedRequestErrorResponse},
		"no such mount":  {req, "nope", ocsp.UnauthorizedErrorResponse},
		"foreign issuer": {foreignRequest(t), "pki", ocsp.UnauthorizedErrorResponse},
	} {
		if der, _ := f.svc.OCSP(ctx, c.mount, c.raw); string(der) != string(c.want) {
			t.Errorf("%s: %x", name, der)
		}
	}
	f.b.Seal()
	if der, _ := f.svc.OCSP(ctx, "pki", req); string(der) != string(ocsp.TryLaterErrorResponse) {
		t.Fatalf("sealed: %x", der)
	}
}

func foreignRequest(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	c, _ := x509.ParseCertificate(der)
	req, err := ocsp.CreateRequest(c, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func parsePEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPeriodicCRLRefresh checks a CRL is rebuilt once half its lifetime
// has passed (before nextUpdate), and after a revocation it missed, and
// not otherwise.
func TestPeriodicCRLRefresh(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, IssuerRequest{})
	m, err := f.svc.d.Mounts.Resolve(ctx, "pki")
	if err != nil {
		t.Fatal(err)
	}
	number := func() int64 {
		c, err := f.st.CRL(ctx, m.ID, "services")
		if err != nil {
			t.Fatal(err)
		}
		return c.Number
	}
	n0 := number()
	*f.clock = f.clock.Add(4 * time.Hour)
	if err := f.svc.Periodic(ctx, []engine.Mount{m}); err != nil || number() != n0 {
		t.Fatalf("fresh CRL rebuilt: %d→%d %v", n0, number(), err)
	}
	*f.clock = f.clock.Add(2 * time.Hour) // 6h of 10h: past half, before nextUpdate
	if err := f.svc.Periodic(ctx, []engine.Mount{m}); err != nil || number() != n0+1 {
		t.Fatalf("half-life CRL not rebuilt: %d→%d %v", n0, number(), err)
	}
	c, _ := f.st.CRL(ctx, m.ID, "services")
	if !crlStale(c, c.ThisUpdate.Add(time.Second), c.ThisUpdate.Add(time.Minute)) || crlStale(c, time.Time{}, c.ThisUpdate.Add(time.Minute)) {
		t.Fatal("a revocation after the CRL does not make it stale")
	}
	if !crlStale(store.CRL{}, time.Time{}, time.Now()) {
		t.Fatal("a missing CRL is not stale")
	}
}

// TestIssuerSettingsAndConstraints checks the issuer's key types,
// profiles, TTLs and name constraints are enforced with errors naming the
// field, and that a constrained issuer's certificates verify.
func TestIssuerSettingsAndConstraints(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, IssuerRequest{MaxTTL: "10d", KeyTypes: []string{"ec-p256"}, Profiles: []string{"server"},
		PermittedDNSDomains: []string{"svc.mcp.test"}, PermittedIPRanges: []string{"10.0.0.0/8"}})
	for field, r := range map[string]IssueRequest{
		"ttl":          {Issuer: "services", DNSNames: []string{"a.svc.mcp.test"}, TTL: "11d"},
		"key_type":     {Issuer: "services", DNSNames: []string{"a.svc.mcp.test"}, KeyType: "ed25519"},
		"profile":      {Issuer: "services", DNSNames: []string{"a.svc.mcp.test"}, Profile: "client"},
		"dns_names":    {Issuer: "services", DNSNames: []string{"a.example.net"}},
		"ip_addresses": {Issuer: "services", DNSNames: []string{"a.svc.mcp.test"}, IPAddresses: []string{"192.168.0.1"}},
	} {
		_, err := f.svc.Issue(ctx, admin, "pki", r)
		if d := apierr.Describe(err); d.Kind != apierr.Invalid || d.Field != field {
			t.Errorf("%s: %+v", field, d)
		}
	}
	is, err := f.svc.Issue(ctx, admin, "pki", IssueRequest{Issuer: "services", DNSNames: []string{"a.svc.mcp.test"}, IPAddresses: []string{"10.1.1.1"}, TTL: "10d"})
	if err != nil {
		t.Fatal(err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	chain := []byte(is.CAChainPEM)
	inter.AddCert(parsePEM(t, string(chain)))
	rest := chain[strings.Index(string(chain), "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n"):]
	roots.AddCert(parsePEM(t, string(rest)))
	if _, err := parsePEM(t, is.CertificatePEM).Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "a.svc.mcp.test"}); err != nil {
		t.Fatalf("constrained chain: %v", err)
	}
	in, err := f.svc.UpdateIssuer(ctx, admin, "pki", "services", SettingsRequest{MaxTTL: "20d", KeyTypes: []string{"ec-p256", "ed25519"}})
	if err != nil || in.Settings.MaxTTL != 20*24*time.Hour || len(in.Settings.KeyTypes) != 2 || in.Settings.Profiles[0] != pki.Server {
		t.Fatalf("update: %+v %v", in.Settings, err)
	}
	if _, err := f.svc.Issue(ctx, admin, "pki", IssueRequest{Issuer: "services", DNSNames: []string{"b.svc.mcp.test"}, KeyType: "ed25519", TTL: "15d"}); err != nil {
		t.Fatalf("after update: %v", err)
	}
	if _, err := f.svc.UpdateIssuer(ctx, admin, "pki", "services", SettingsRequest{DefaultTTL: "30d"}); apierr.Describe(err).Field != "default_ttl" {
		t.Fatalf("default above max: %v", err)
	}
	if _, err := f.svc.GenerateRoot(ctx, admin, "pki", RootRequest{}); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("second root: %v", err)
	}
	if _, err := f.svc.CreateIssuer(ctx, admin, "pki", IssuerRequest{Name: "services"}); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("second issuer: %v", err)
	}
	if _, err := f.svc.CreateIssuer(ctx, agent, "pki", IssuerRequest{Name: "mine"}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("agent creates an issuer: %v", err)
	}
}

// TestEd25519IssuerOCSP documents a limit: an Ed25519 issuer signs
// certificates and CRLs, but its OCSP answers are tryLater (x/crypto/ocsp
// signs with RSA and ECDSA only), so its certificates carry no OCSP URL.
func TestEd25519IssuerOCSP(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, IssuerRequest{KeyType: "ed25519"})
	is, err := f.svc.Issue(ctx, agent, "pki", IssueRequest{Issuer: "services", DNSNames: []string{"e.svc.mcp.test"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, issuer := parsePEM(t, is.CertificatePEM), parsePEM(t, is.CAChainPEM)
	req, _ := ocsp.CreateRequest(leaf, issuer, nil)
	if der, _ := f.svc.OCSP(ctx, "pki", req); string(der) != string(ocsp.TryLaterErrorResponse) {
		t.Fatalf("ed25519 OCSP: %x", der)
	}
	if _, err := f.svc.GetCRL(ctx, admin, "pki", "services"); err != nil {
		t.Fatalf("ed25519 CRL: %v", err)
	}
}
