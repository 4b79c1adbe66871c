package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// RootRequest asks for a generated root.
type RootRequest struct {
	CommonName   string `json:"common_name"`
	Organization string `json:"organization"`
	KeyType      string `json:"key_type"`
	TTL          string `json:"ttl"`
}

// ImportRequest is an existing root to install.
type ImportRequest struct {
	CertificatePEM string `json:"certificate_pem"`
	PrivateKeyPEM  string `json:"private_key_pem"`
}

// The defaults of a generated root and issuer.
const (
	DefaultRootCN  = "Metacircular Root CA"
	DefaultRootTTL = 3650 * 24 * time.Hour
	// backdate tolerates clock skew between issuer and verifiers.
	backdate = 5 * time.Minute
)

func (s *Service) refuseExisting(ctx context.Context, m engine.Mount, name string) error {
	_, _, err := loadRecord(ctx, m.Storage, name)
	switch {
	case err == nil && name == pki.RootName:
		return wrapf(engine.ErrConflict, "mount %s has a root already", m.Name)
	case err == nil:
		return wrapf(engine.ErrConflict, "issuer %s exists", name)
	case errors.Is(err, engine.ErrNotFound), errors.Is(err, engine.ErrPrecondition):
		return nil
	}
	return err
}

// GenerateRoot creates the mount's self-signed root (path length 1: it
// signs issuers, which sign leaves).
func (s *Service) GenerateRoot(ctx context.Context, c engine.Caller, mount string, r RootRequest) (pki.IssuerInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, pki.RootName); err != nil {
		return pki.IssuerInfo{}, err
	}
	kt, err := pki.ParseCAKeyType("key_type", r.KeyType)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	ttl, err := pki.ParseDuration("ttl", r.TTL)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if ttl == 0 {
		ttl = DefaultRootTTL
	}
	cn := r.CommonName
	if cn == "" {
		cn = DefaultRootCN
	}
	if err := checkSubjectField("common_name", cn); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := checkSubjectField("organization", r.Organization); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.refuseExisting(ctx, m, pki.RootName); err != nil {
		return pki.IssuerInfo{}, err
	}
	key, err := kt.Generate()
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	subject := pkix.Name{CommonName: cn}
	if r.Organization != "" {
		subject.Organization = []string{r.Organization}
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	rec, err := newRecord(kt, key, der, now)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	return s.installRoot(ctx, m, rec)
}

// ImportRoot installs an existing self-signed root and its key (the
// launcher's seed root), so every certificate it signed keeps validating.
func (s *Service) ImportRoot(ctx context.Context, c engine.Caller, mount string, r ImportRequest) (pki.IssuerInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, pki.RootName); err != nil {
		return pki.IssuerInfo{}, err
	}
	block, _ := pem.Decode([]byte(r.CertificatePEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return pki.IssuerInfo{}, apierr.InvalidField("certificate_pem", "no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return pki.IssuerInfo{}, apierr.InvalidField("certificate_pem", "%v", err)
	}
	if err := checkImportedRoot(cert, s.now()); err != nil {
		return pki.IssuerInfo{}, err
	}
	key, err := pki.ParsePrivateKeyPEM([]byte(r.PrivateKeyPEM))
	if err != nil {
		return pki.IssuerInfo{}, apierr.InvalidField("private_key_pem", "%v", err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return pki.IssuerInfo{}, apierr.InvalidField("private_key_pem", "the key does not belong to the certificate")
	}
	kt, err := pki.KeyTypeOf(cert.PublicKey)
	if err != nil {
		return pki.IssuerInfo{}, apierr.InvalidField("certificate_pem", "%v", err)
	}
	if err := s.refuseExisting(ctx, m, pki.RootName); err != nil {
		return pki.IssuerInfo{}, err
	}
	rec, err := newRecord(kt, key, cert.Raw, s.now())
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	return s.installRoot(ctx, m, rec)
}

func checkImportedRoot(cert *x509.Certificate, now time.Time) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return apierr.InvalidField("certificate_pem", "not a CA certificate (basic constraints CA:TRUE required)")
	case !bytes.Equal(cert.RawIssuer, cert.RawSubject) || cert.CheckSignatureFrom(cert) != nil:
		return apierr.InvalidField("certificate_pem", "not a self-signed root")
	case cert.MaxPathLen == 0 && cert.MaxPathLenZero:
		return apierr.InvalidField("certificate_pem", "path length 0: the root could not sign issuers")
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return apierr.InvalidField("certificate_pem", "the key usage lacks keyCertSign")
	case !now.Before(cert.NotAfter):
		return apierr.InvalidField("certificate_pem", "expired on %s", cert.NotAfter.Format(time.RFC3339))
	}
	return nil
}

func (s *Service) installRoot(ctx context.Context, m engine.Mount, rec record) (pki.IssuerInfo, error) {
	certDER := rec.Cert
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	kt := rec.KeyType
	if err := putRecord(ctx, m.Storage, pki.RootName, rec); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.d.Store.PutCACert(ctx, m.ID, pki.RootName, certDER); err != nil {
		return pki.IssuerInfo{}, err
	}
	if _, err := s.buildCRL(ctx, m, pki.RootName); err != nil {
		s.d.Logger.Warn("root CRL not built", "mount", m.Name, "error", err)
	}
	s.d.Logger.Info("root installed", "mount", m.Name, "subject", cert.Subject.String(), "key_type", kt)
	return pki.IssuerInfo{Name: pki.RootName, IsRoot: true, KeyType: kt, Cert: cert, Root: cert}, nil
}

func checkSubjectField(field, v string) error {
	if len(v) > 64 {
		return apierr.InvalidField(field, "longer than 64 characters")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return apierr.InvalidField(field, "contains a control character")
		}
	}
	return nil
}
