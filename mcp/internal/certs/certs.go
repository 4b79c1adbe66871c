// Package certs provisions the TLS certificates mc-proxy serves for a
// node's L7 routes: issued by Metacrypt's CA through its Go client as the
// agent's system account, written as a full chain and a 0600 key under
// the configured directory (<dir>/<hostname>.pem and .key), and reused
// while more than RenewBefore of their life remains. The files are the
// record: what is on disk is what mc-proxy serves.
package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	metacryptclient "git.metacircular.net/metacircular/metacrypt/client"
)

// DefaultRenewBefore is how much validity a certificate must have left to
// be reused (PLATFORM.md §10: reuse while more than 30 days remain).
const DefaultRenewBefore = 30 * 24 * time.Hour

// Issuer issues a key and certificate (Metacrypt's client).
type Issuer interface {
	Issue(ctx context.Context, mount string, r metacryptclient.IssueRequest) (metacryptclient.Issued, error)
	Revoke(ctx context.Context, mount, serial, reason string) (metacryptclient.Certificate, error)
}

// Files is a certificate on disk.
type Files struct {
	Cert     string
	Key      string
	Serial   string
	NotAfter time.Time
	// Reused is true when Ensure kept the certificate it found.
	Reused bool
}

// Provider issues and keeps certificates.
type Provider struct {
	CA Issuer
	// Mount and IssuerName select the CA mount and issuer ("pki",
	// "services").
	Mount, IssuerName string
	// Dir holds the files; mc-proxy must be able to read it.
	Dir string
	// TTL is the requested lifetime (0: the issuer's default).
	TTL time.Duration
	// RenewBefore (default DefaultRenewBefore).
	RenewBefore time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (p *Provider) now() time.Time {
	if p.Now == nil {
		return time.Now()
	}
	return p.Now()
}

func (p *Provider) renewBefore() time.Duration {
	if p.RenewBefore <= 0 {
		return DefaultRenewBefore
	}
	return p.RenewBefore
}

// Paths are the files of hostname's certificate.
func (p *Provider) Paths(hostname string) (cert, key string) {
	return filepath.Join(p.Dir, hostname+".pem"), filepath.Join(p.Dir, hostname+".key")
}

// Current returns the certificate on disk for hostname when it is a
// valid full chain for the name with more than RenewBefore left.
func (p *Provider) Current(hostname string) (Files, bool) {
	certPath, keyPath := p.Paths(hostname)
	data, err := os.ReadFile(certPath) //nolint:gosec // our own certificate directory
	if err != nil {
		return Files{}, false
	}
	if _, err := os.Stat(keyPath); err != nil {
		return Files{}, false
	}
	if tlsutil.VerifyFullChain(data) != nil {
		return Files{}, false
	}
	leaf, err := firstCert(data)
	if err != nil || leaf.VerifyHostname(hostname) != nil {
		return Files{}, false
	}
	if leaf.NotAfter.Sub(p.now()) <= p.renewBefore() {
		return Files{}, false
	}
	return Files{Cert: certPath, Key: keyPath, Serial: serialOf(leaf), NotAfter: leaf.NotAfter, Reused: true}, true
}

// Ensure returns a certificate for hostname, issuing one when there is
// none good enough on disk. An issuance failure is an error: a deploy
// never goes on without its certificate.
func (p *Provider) Ensure(ctx context.Context, hostname string) (Files, error) {
	if f, ok := p.Current(hostname); ok {
		return f, nil
	}
	iss, err := p.CA.Issue(ctx, p.Mount, metacryptclient.IssueRequest{
		Issuer: p.IssuerName, CommonName: hostname, DNSNames: []string{hostname}, TTL: p.TTL, Profile: "server",
	})
	if err != nil {
		return Files{}, fmt.Errorf("issue certificate for %s from %s/%s: %w", hostname, p.Mount, p.IssuerName, err)
	}
	chain := []byte(iss.ChainPEM)
	if err := tlsutil.VerifyFullChain(chain); err != nil {
		return Files{}, fmt.Errorf("certificate for %s: Metacrypt returned no full chain: %w", hostname, err)
	}
	if err := os.MkdirAll(p.Dir, 0o750); err != nil {
		return Files{}, fmt.Errorf("certificate directory: %w", err)
	}
	certPath, keyPath := p.Paths(hostname)
	// Key first: a chain without its key is never left for mc-proxy.
	if err := atomicfile.Write(keyPath, []byte(iss.PrivateKeyPEM), 0o600); err != nil {
		return Files{}, fmt.Errorf("write key for %s: %w", hostname, err)
	}
	if err := atomicfile.Write(certPath, chain, 0o644); err != nil { //nolint:gosec // a public certificate chain
		return Files{}, fmt.Errorf("write certificate for %s: %w", hostname, err)
	}
	return Files{Cert: certPath, Key: keyPath, Serial: iss.Certificate.Serial, NotAfter: iss.Certificate.NotAfter}, nil
}

// Remove deletes hostname's files and revokes the certificate (best
// effort: a certificate that cannot be revoked still expires).
func (p *Provider) Remove(ctx context.Context, hostname string) error {
	certPath, keyPath := p.Paths(hostname)
	if data, err := os.ReadFile(certPath); err == nil { //nolint:gosec // our own certificate directory
		if leaf, err := firstCert(data); err == nil && p.CA != nil {
			_, _ = p.CA.Revoke(ctx, p.Mount, serialOf(leaf), "cessation-of-operation")
		}
	}
	for _, f := range []string{certPath, keyPath} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove certificate for %s: %w", hostname, err)
		}
	}
	return nil
}

func firstCert(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// serialOf is the serial as Metacrypt writes it (lower-case hex).
func serialOf(c *x509.Certificate) string {
	return strings.ToLower(c.SerialNumber.Text(16))
}
