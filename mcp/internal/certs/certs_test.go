package certs

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/internal/seedpki"
	metacryptclient "git.metacircular.net/metacircular/metacrypt/client"
)

// seedIssuer issues from a seed CA with a chosen validity, as Metacrypt
// would (full chain, PKCS#8 key).
type seedIssuer struct {
	ca       *seedpki.CA
	validity time.Duration
	issued   int
	revoked  []string
	fail     error
}

func (s *seedIssuer) Issue(_ context.Context, _ string, r metacryptclient.IssueRequest) (metacryptclient.Issued, error) {
	if s.fail != nil {
		return metacryptclient.Issued{}, s.fail
	}
	s.issued++
	out, err := s.ca.Issue(r.DNSNames[0], seedpki.IssueRequest{DNSNames: r.DNSNames, IPs: []net.IP{}, Validity: s.validity})
	if err != nil {
		return metacryptclient.Issued{}, err
	}
	chain, _ := os.ReadFile(out.CertPath)
	key, _ := os.ReadFile(out.KeyPath)
	_ = os.Remove(out.CertPath) // the next Issue makes a new one
	return metacryptclient.Issued{ChainPEM: string(chain), PrivateKeyPEM: string(key),
		Certificate: metacryptclient.Certificate{NotAfter: out.Leaf.NotAfter}}, nil
}

func (s *seedIssuer) Revoke(_ context.Context, _, serial, _ string) (metacryptclient.Certificate, error) {
	s.revoked = append(s.revoked, serial)
	return metacryptclient.Certificate{}, nil
}

func TestEnsureReusesUntil30DaysLeft(t *testing.T) {
	ca, err := seedpki.Init(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	iss := &seedIssuer{ca: ca, validity: 90 * 24 * time.Hour}
	now := time.Now()
	p := &Provider{CA: iss, Mount: "pki", IssuerName: "services", Dir: filepath.Join(t.TempDir(), "certs"), Now: func() time.Time { return now }}
	ctx := context.Background()
	f, err := p.Ensure(ctx, "hello.svc.mcp.test")
	if err != nil || f.Reused || iss.issued != 1 {
		t.Fatalf("first: %+v %v", f, err)
	}
	if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if f2, err := p.Ensure(ctx, "hello.svc.mcp.test"); err != nil || !f2.Reused || iss.issued != 1 {
		t.Fatalf("second: %+v %v", f2, err)
	}
	// 61 days later 29 remain: renewed.
	now = now.Add(61 * 24 * time.Hour)
	if _, ok := p.Current("hello.svc.mcp.test"); ok {
		t.Fatal("a certificate with 29 days left counts as current")
	}
	if f3, err := p.Ensure(ctx, "hello.svc.mcp.test"); err != nil || f3.Reused || iss.issued != 2 {
		t.Fatalf("renewal: %+v %v", f3, err)
	}
	// A certificate for another name is not reused for this one.
	if _, ok := p.Current("other.svc.mcp.test"); ok {
		t.Fatal("no certificate yet")
	}
	if err := p.Remove(ctx, "hello.svc.mcp.test"); err != nil || len(iss.revoked) != 1 {
		t.Fatalf("remove: %v %v", err, iss.revoked)
	}
	if _, err := os.Stat(f.Cert); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("certificate left")
	}
}

func TestIssuanceFailureIsAnError(t *testing.T) {
	p := &Provider{CA: &seedIssuer{fail: errors.New("denied: name not allowed")}, Mount: "pki", IssuerName: "services", Dir: t.TempDir()}
	_, err := p.Ensure(context.Background(), "x.example.net")
	if err == nil || !strings.Contains(err.Error(), "issue certificate for x.example.net from pki/services: denied") {
		t.Fatal(err)
	}
}
