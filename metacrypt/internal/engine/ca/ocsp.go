package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"time"

	"golang.org/x/crypto/ocsp"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// MaxOCSPRequest bounds an OCSP request's size.
const MaxOCSPRequest = 16 << 10

// OCSP answers an RFC 6960 request for a mount, always with a DER
// response: a signed good, revoked or unknown status from the issuer's
// own key; malformedRequest for bytes that do not parse; unauthorized for
// a certificate no issuer of the mount signed; tryLater while sealed
// (the keys are behind the barrier) or when the issuer's key cannot sign
// OCSP (Ed25519, which golang.org/x/crypto/ocsp does not support). The
// time is when the response is valid until (zero for error responses),
// for caching.
func (s *Service) OCSP(ctx context.Context, mount string, raw []byte) ([]byte, time.Time) {
	req, err := ocsp.ParseRequest(raw)
	if err != nil {
		return ocsp.MalformedRequestErrorResponse, time.Time{}
	}
	m, err := s.publicMount(ctx, mount)
	if err != nil {
		return ocsp.UnauthorizedErrorResponse, time.Time{}
	}
	if !req.HashAlgorithm.Available() {
		return ocsp.MalformedRequestErrorResponse, time.Time{}
	}
	certs, err := s.d.Store.CACerts(ctx, m.ID)
	if err != nil {
		s.d.Logger.Error("ocsp: list issuers", "mount", m.Name, "error", err)
		return ocsp.InternalErrorErrorResponse, time.Time{}
	}
	var issuer string
	var issuerCert *x509.Certificate
	for name, der := range certs {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		if matchesIssuer(req, cert) {
			issuer, issuerCert = name, cert
			break
		}
	}
	if issuerCert == nil {
		return ocsp.UnauthorizedErrorResponse, time.Time{}
	}
	if s.d.Sealed() {
		return ocsp.TryLaterErrorResponse, time.Time{}
	}
	now := s.now().Truncate(time.Minute)
	tmpl := ocsp.Response{
		Status:       ocsp.Unknown,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(s.d.Config.OCSPLifetime),
	}
	cert, err := s.d.Store.Certificate(ctx, m.ID, m.Name, pki.FormatSerial(req.SerialNumber))
	switch {
	case err == nil && cert.Issuer == issuer && cert.RevokedAt != nil:
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, *cert.RevokedAt, int(cert.Reason)
	case err == nil && cert.Issuer == issuer:
		tmpl.Status = ocsp.Good
	case err != nil && !errors.Is(err, engine.ErrNotFound):
		s.d.Logger.Error("ocsp: read certificate", "mount", m.Name, "error", err)
		return ocsp.InternalErrorErrorResponse, time.Time{}
	}
	iss, err := load(ctx, m.Storage, issuer)
	if err != nil {
		if apierr.KindOf(err) != apierr.Unavailable {
			s.d.Logger.Error("ocsp: load issuer", "mount", m.Name, "issuer", issuer, "error", err)
		}
		return ocsp.TryLaterErrorResponse, time.Time{}
	}
	resp, err := ocsp.CreateResponse(iss.cert, iss.cert, tmpl, iss.signer)
	if err != nil {
		s.d.Logger.Warn("ocsp: sign", "mount", m.Name, "issuer", issuer, "error", err)
		return ocsp.TryLaterErrorResponse, time.Time{}
	}
	return resp, tmpl.NextUpdate
}

// matchesIssuer reports whether the request's issuer name and key hashes
// are those of cert.
func matchesIssuer(req *ocsp.Request, cert *x509.Certificate) bool {
	bits, err := spkiBits(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(cert.RawSubject)
	nameHash := h.Sum(nil)
	h.Reset()
	h.Write(bits)
	keyHash := h.Sum(nil)
	return bytes.Equal(nameHash, req.IssuerNameHash) && bytes.Equal(keyHash, req.IssuerKeyHash)
}
