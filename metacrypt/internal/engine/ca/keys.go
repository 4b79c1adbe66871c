package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 key identifiers and RFC 6960 issuer hashes, not security
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// storeKind is the barrier kind of CA records: key "root" for the root,
// the issuer's name for an issuer.
const storeKind = "ca"

// record is a root or issuer as stored in the barrier: its key (PKCS#8
// DER), its certificate and, for an issuer, its settings. The barrier's
// copy of the certificate is authoritative; the store's public copy is
// for serving while sealed.
type record struct {
	KeyType     pki.KeyType         `json:"key_type"`
	Key         []byte              `json:"key"`
	Cert        []byte              `json:"cert"`
	Settings    *pki.IssuerSettings `json:"settings,omitempty"`
	Constraints pki.Constraints     `json:"constraints"`
	CreatedAt   time.Time           `json:"created_at"`
}

// loaded is a record in use: the parsed certificate and the signer. The
// signer is dropped when the operation ends.
type loaded struct {
	name   string
	rec    record
	cert   *x509.Certificate
	signer crypto.Signer
}

func (l *loaded) info(root *x509.Certificate) pki.IssuerInfo {
	in := pki.IssuerInfo{Name: l.name, IsRoot: l.name == pki.RootName, KeyType: l.rec.KeyType, Cert: l.cert, Root: root, Constraints: l.rec.Constraints}
	if l.rec.Settings != nil {
		in.Settings = *l.rec.Settings
	}
	return in
}

// put stores a record, the key bytes cleared afterwards.
func putRecord(ctx context.Context, st engine.Storage, name string, rec record) error {
	b, err := json.Marshal(rec)
	clear(rec.Key)
	if err != nil {
		return err
	}
	defer clear(b)
	return st.Put(ctx, storeKind, name, b)
}

// loadRecord reads a record without its key (for descriptions).
func loadRecord(ctx context.Context, st engine.Storage, name string) (record, *x509.Certificate, error) {
	b, err := st.Get(ctx, storeKind, name)
	if errors.Is(err, engine.ErrNotFound) {
		if name == pki.RootName {
			return record{}, nil, wrapf(engine.ErrPrecondition, "the mount has no root yet (generate or import one)")
		}
		return record{}, nil, wrapf(engine.ErrNotFound, "issuer %s", name)
	}
	if err != nil {
		return record{}, nil, err
	}
	defer clear(b)
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, nil, fmt.Errorf("stored CA record %s: %w", name, err)
	}
	clear(rec.Key)
	rec.Key = nil
	cert, err := x509.ParseCertificate(rec.Cert)
	if err != nil {
		return record{}, nil, fmt.Errorf("stored CA certificate %s: %w", name, err)
	}
	return rec, cert, nil
}

// loadCertDER reads only a record's certificate, unparsed: what a chain
// answer needs of the root (its key is neither decoded nor parsed).
func loadCertDER(ctx context.Context, st engine.Storage, name string) ([]byte, error) {
	b, err := st.Get(ctx, storeKind, name)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, wrapf(engine.ErrPrecondition, "the mount has no %s record", name)
	}
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var rec struct {
		Cert []byte `json:"cert"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("stored CA record %s: %w", name, err)
	}
	return rec.Cert, nil
}

// load reads a record with its signer, checking that the key belongs to
// the certificate.
func load(ctx context.Context, st engine.Storage, name string) (*loaded, error) {
	b, err := st.Get(ctx, storeKind, name)
	if errors.Is(err, engine.ErrNotFound) {
		if name == pki.RootName {
			return nil, wrapf(engine.ErrPrecondition, "the mount has no root yet (generate or import one)")
		}
		return nil, wrapf(engine.ErrNotFound, "issuer %s", name)
	}
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("stored CA record %s: %w", name, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(rec.Key)
	clear(rec.Key)
	rec.Key = nil
	if err != nil {
		return nil, fmt.Errorf("stored CA key %s: %w", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("stored CA key %s cannot sign", name)
	}
	cert, err := x509.ParseCertificate(rec.Cert)
	if err != nil {
		return nil, fmt.Errorf("stored CA certificate %s: %w", name, err)
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("stored CA key %s does not match its certificate", name)
	}
	return &loaded{name: name, rec: rec, cert: cert, signer: signer}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// newRecord makes a record from a fresh key and its certificate.
func newRecord(kt pki.KeyType, key crypto.Signer, certDER []byte, now time.Time) (record, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return record{}, err
	}
	return record{KeyType: kt, Key: der, Cert: certDER, CreatedAt: now}, nil
}

// randomSerial is a random positive 128-bit serial (RFC 5280 allows up to
// 20 octets; CA/B asks for at least 64 random bits).
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("draw serial: %w", err)
		}
		if n.BitLen() > 64 {
			return n, nil
		}
	}
}

// subjectKeyID is RFC 5280 §4.2.1.2 method 1: SHA-1 of the subject public
// key bits.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	bits, err := publicKeyBits(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(bits) //nolint:gosec // an identifier
	return sum[:], nil
}

func publicKeyBits(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return spkiBits(der)
}

func spkiBits(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, err
	}
	return info.PublicKey.RightAlign(), nil
}
