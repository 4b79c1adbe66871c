package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"strings"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// Renewal information (RFC 9773): a client asks, for a certificate ID,
// when to renew; the answer is a window within the certificate's life.

// ARIRetryAfter is how long a client should wait before asking again.
const ARIRetryAfter = 6 * time.Hour

// Window is a suggested renewal window.
type Window struct {
	Start, End time.Time
}

// ParseCertID reads an RFC 9773 certificate ID: the base64url authority
// key identifier, ".", the base64url DER serial number. It returns both,
// the serial in Metacrypt's hex form.
func ParseCertID(id string) ([]byte, string, error) {
	akiPart, serialPart, ok := strings.Cut(id, ".")
	aki, err1 := base64.RawURLEncoding.Strict().DecodeString(akiPart)
	sn, err2 := base64.RawURLEncoding.Strict().DecodeString(serialPart)
	// The serial is a DER INTEGER's content; one without its leading zero
	// (its top bit set) is read as positive too, as some clients send it.
	if !ok || err1 != nil || err2 != nil || len(aki) == 0 || len(sn) == 0 || len(sn) > 21 {
		return nil, "", NewProblem(ErrMalformed, "%q is not a certificate ID (base64url AKI \".\" base64url serial)", id)
	}
	n := new(big.Int).SetBytes(sn)
	if n.Sign() == 0 {
		return nil, "", NewProblem(ErrMalformed, "certificate ID with a zero serial")
	}
	return aki, pki.FormatSerial(n), nil
}

// CertID is a certificate's RFC 9773 ID.
func CertID(c *x509.Certificate) string {
	sn := c.SerialNumber.Bytes()
	if len(sn) == 0 || sn[0]&0x80 != 0 {
		sn = append([]byte{0}, sn...)
	}
	return base64.RawURLEncoding.EncodeToString(c.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(sn)
}

// RenewalInfo suggests when to renew a certificate of the mount: in the
// last third of its life, between 2/3 and 5/6 of it (at 1/6 of its life
// before expiry at the latest); a revoked certificate at once (a window
// in the past).
func (s *Service) RenewalInfo(ctx context.Context, mount, issuer, certID string) (Window, error) {
	aki, serial, err := ParseCertID(certID)
	if err != nil {
		return Window{}, err
	}
	rec, err := s.d.CA.Lookup(ctx, mount, serial)
	if err != nil {
		return Window{}, notFound(err, "certificate")
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return Window{}, err
	}
	if rec.Issuer != issuer || !bytes.Equal(cert.AuthorityKeyId, aki) {
		return Window{}, NewProblem(ErrMalformed, "no such certificate").withStatus(404)
	}
	if rec.RevokedAt != nil {
		now := s.now()
		return Window{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}, nil
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return Window{
		Start: cert.NotBefore.Add(life * 2 / 3).UTC().Truncate(time.Second),
		End:   cert.NotBefore.Add(life * 5 / 6).UTC().Truncate(time.Second),
	}, nil
}
