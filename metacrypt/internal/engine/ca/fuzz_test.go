package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/names"
)

// FuzzCSRNames feeds arbitrary bytes to the CSR path: parse, signature
// check and name extraction. Nothing panics; what is accepted has only
// valid, normalized DNS names and IP addresses, and a common name that is
// one of them.
func FuzzCSRNames(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	add := func(tmpl *x509.CertificateRequest) {
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	add(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "mcq.svc.mcp.test"}, DNSNames: []string{"mcq.svc.mcp.test"}})
	add(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "10.0.0.1"}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}})
	add(&x509.CertificateRequest{DNSNames: []string{"*.svc.mcp.test", "A.Example.NET."}})
	add(&x509.CertificateRequest{DNSNames: []string{"bad_name.test"}})
	add(&x509.CertificateRequest{EmailAddresses: []string{"a@example.net"}, URIs: []*url.URL{{Scheme: "spiffe", Host: "x"}}})
	add(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "not a name"}})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		n, cn, err := csrNames(csr)
		if err != nil {
			return
		}
		if len(n.DNS)+len(n.IPs) == 0 || len(n.DNS)+len(n.IPs) > MaxNames {
			t.Fatalf("accepted %d names", len(n.DNS)+len(n.IPs))
		}
		found := cn == ""
		for _, d := range n.DNS {
			if norm, err := names.ParseDNS(d); err != nil || norm != d {
				t.Fatalf("accepted DNS name %q (%v)", d, err)
			}
			found = found || d == cn
		}
		for _, ip := range n.IPs {
			if !ip.IsValid() || ip.Is4In6() {
				t.Fatalf("accepted IP %v", ip)
			}
			found = found || ip.String() == cn
		}
		if !found {
			t.Fatalf("common name %q is not among the names", cn)
		}
	})
}
