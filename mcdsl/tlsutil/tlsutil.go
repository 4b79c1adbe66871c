package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ServerConfig loads a certificate chain and key and returns a TLS 1.3-only
// server configuration. The certificate file must hold a full chain.
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	certPEM, err := os.ReadFile(certFile) //nolint:gosec // operator-configured path
	if err != nil {
		return nil, fmt.Errorf("load tls cert: %w", err)
	}
	if err := VerifyFullChain(certPEM); err != nil {
		return nil, fmt.Errorf("load tls cert %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile) //nolint:gosec // operator-configured path
	if err != nil {
		return nil, fmt.Errorf("load tls key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load tls key pair %s, %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// LoadCAPool reads a PEM file of one or more CA certificates.
func LoadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path) //nolint:gosec // operator-configured path
	if err != nil {
		return nil, fmt.Errorf("load ca pool: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("load ca pool %s: no PEM certificates found", path)
	}
	return pool, nil
}

// ClientConfig returns a TLS 1.3-only client configuration trusting the CA
// certificates in caFile, or the system roots when caFile is empty.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if caFile != "" {
		pool, err := LoadCAPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ParseChain decodes every CERTIFICATE block of a PEM bundle, in order.
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificates found")
	}
	return certs, nil
}

// VerifyFullChain checks that a PEM bundle is a full chain: the leaf first,
// each certificate signed by the one after it, and the last one either a
// self-signed root or an intermediate signed by a root the client already
// trusts. A single certificate passes only if it is self-signed.
func VerifyFullChain(data []byte) error {
	certs, err := ParseChain(data)
	if err != nil {
		return err
	}
	if certs[0].IsCA && len(certs) > 1 {
		return fmt.Errorf("not a full chain: first certificate %q is a CA, expected the leaf first", certs[0].Subject)
	}
	for i := 0; i+1 < len(certs); i++ {
		if err := certs[i].CheckSignatureFrom(certs[i+1]); err != nil {
			return fmt.Errorf("not a full chain: %q is not signed by the next certificate %q: %w",
				certs[i].Subject, certs[i+1].Subject, err)
		}
	}
	if len(certs) == 1 {
		c := certs[0]
		if !bytes.Equal(c.RawIssuer, c.RawSubject) || c.CheckSignatureFrom(c) != nil {
			return fmt.Errorf("not a full chain: %q has no issuer certificate after it (issuer %q)", c.Subject, c.Issuer)
		}
	}
	return nil
}
