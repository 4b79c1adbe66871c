package sshca

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// Certificate is the record of a signed certificate.
type Certificate struct {
	Serial          uint64            `json:"serial"`
	CertType        CertType          `json:"cert_type"`
	Profile         string            `json:"profile"`
	KeyID           string            `json:"key_id"`
	Principals      []string          `json:"principals"`
	ValidAfter      time.Time         `json:"valid_after"`
	ValidBefore     time.Time         `json:"valid_before"`
	Extensions      []string          `json:"extensions"`
	CriticalOptions map[string]string `json:"critical_options"`
	// KeyType and KeyFingerprint (SHA256:...) describe the certified key.
	KeyType        string     `json:"key_type"`
	KeyFingerprint string     `json:"key_fingerprint"`
	RequestedBy    string     `json:"requested_by"`
	CreatedAt      time.Time  `json:"created_at"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	// Certificate is the certificate in OpenSSH's public key form.
	Certificate string `json:"certificate"`
}

// Status is a certificate's state at a time.
func (c Certificate) Status(now time.Time) Status {
	switch {
	case c.RevokedAt != nil:
		return StatusRevoked
	case !now.Before(c.ValidBefore):
		return StatusExpired
	}
	return StatusValid
}

// Status is a certificate's state.
type Status string

// The states.
const (
	StatusValid   Status = "valid"
	StatusRevoked Status = "revoked"
	StatusExpired Status = "expired"
)

// ListRequest selects certificate records; empty fields select all.
type ListRequest struct {
	Profile     string `json:"profile"`
	Principal   string `json:"principal"`
	RequestedBy string `json:"requested_by"`
	// Status is valid, revoked or expired.
	Status string `json:"status"`
	Limit  int    `json:"limit"`
}

// The bounds of a listing.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// certKey is a serial's storage key: zero-padded, so keys sort as
// numbers.
func certKey(serial uint64) string { return fmt.Sprintf("%020d", serial) }

// ParseSerial reads a serial number in decimal, as OpenSSH prints it.
func ParseSerial(field, s string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n == 0 {
		return 0, apierr.InvalidField(field, "%q is not a certificate serial number (decimal, from 1)", s)
	}
	return n, nil
}

// GetCertificate returns a certificate's record (read on
// "profile/<its profile>"; a serial that does not exist is told only to
// who may read "certs").
func (s *Service) GetCertificate(ctx context.Context, c engine.Caller, mount, serial string) (Certificate, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Certificate{}, err
	}
	n, err := ParseSerial("serial", serial)
	if err != nil {
		return Certificate{}, err
	}
	rec, err := loadCert(ctx, m, n)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			if aerr := s.authorize(ctx, c, m, policy.OpRead, resourceCerts); aerr != nil {
				return Certificate{}, aerr
			}
		}
		return Certificate{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, resourceProfile(rec.Profile)); err != nil {
		return Certificate{}, err
	}
	return rec, nil
}

// ListCertificates searches the records (read on "certs"), newest first.
func (s *Service) ListCertificates(ctx context.Context, c engine.Caller, mount string, r ListRequest) ([]Certificate, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return nil, err
	}
	switch Status(r.Status) {
	case "", StatusValid, StatusRevoked, StatusExpired:
	default:
		return nil, apierr.InvalidField("status", "must be valid, revoked or expired, got %q", r.Status)
	}
	if r.Limit < 0 || r.Limit > MaxListLimit {
		return nil, apierr.InvalidField("limit", "must be 0..%d, got %d", MaxListLimit, r.Limit)
	}
	if r.Limit == 0 {
		r.Limit = DefaultListLimit
	}
	if r.Profile != "" {
		if err := validateProfileName("profile", r.Profile); err != nil {
			return nil, err
		}
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, resourceCerts); err != nil {
		return nil, err
	}
	keys, err := m.Storage.List(ctx, kindCert)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []Certificate
	for _, k := range slices.Backward(keys) {
		var rec Certificate
		if err := getJSON(ctx, m.Storage, kindCert, k, &rec); err != nil {
			return nil, err
		}
		if (r.Profile != "" && rec.Profile != r.Profile) || (r.RequestedBy != "" && rec.RequestedBy != r.RequestedBy) ||
			(r.Principal != "" && !slices.Contains(rec.Principals, r.Principal)) || (r.Status != "" && rec.Status(now) != Status(r.Status)) {
			continue
		}
		if out = append(out, rec); len(out) == r.Limit {
			break
		}
	}
	return out, nil
}

func loadCert(ctx context.Context, m engine.Mount, serial uint64) (Certificate, error) {
	var rec Certificate
	if err := getJSON(ctx, m.Storage, kindCert, certKey(serial), &rec); err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return Certificate{}, wrapf(engine.ErrNotFound, "certificate %d", serial)
		}
		return Certificate{}, err
	}
	return rec, nil
}
