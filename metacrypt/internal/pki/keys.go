package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// KeyType is a key algorithm and size.
type KeyType string

// The key types.
const (
	ECP256  KeyType = "ec-p256"
	ECP384  KeyType = "ec-p384"
	Ed25519 KeyType = "ed25519"
	RSA2048 KeyType = "rsa-2048"
	RSA3072 KeyType = "rsa-3072"
	RSA4096 KeyType = "rsa-4096"
)

// KeyTypes lists every key type a leaf may have, strongest-first within
// each family.
var KeyTypes = []KeyType{ECP256, ECP384, Ed25519, RSA2048, RSA3072, RSA4096}

// CAKeyTypes are the key types a root or an issuer may have (RSA-2048 is
// accepted for leaves from CSRs only).
var CAKeyTypes = []KeyType{ECP256, ECP384, Ed25519, RSA3072, RSA4096}

// ParseKeyType parses a key type name; field names the input in errors.
// Empty is ec-p256.
func ParseKeyType(field, s string) (KeyType, error) {
	if s == "" {
		return ECP256, nil
	}
	k := KeyType(strings.ToLower(s))
	if !slices.Contains(KeyTypes, k) {
		return "", apierr.InvalidField(field, "unknown key type %q (%s)", s, joinKeyTypes(KeyTypes))
	}
	return k, nil
}

func joinKeyTypes(ks []KeyType) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ParseCAKeyType is ParseKeyType for a root or issuer key.
func ParseCAKeyType(field, s string) (KeyType, error) {
	k, err := ParseKeyType(field, s)
	if err != nil {
		return "", err
	}
	if !slices.Contains(CAKeyTypes, k) {
		return "", apierr.InvalidField(field, "%s is too weak for a CA key (%s)", k, joinKeyTypes(CAKeyTypes))
	}
	return k, nil
}

// Generate makes a new private key of the type.
func (k KeyType) Generate() (crypto.Signer, error) {
	switch k {
	case ECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("generate key: unknown key type %q", k)
}

// KeyTypeOf is the type of a public key, or an error for one Metacrypt
// does not sign (RSA below 2048 bits or of an odd size, other curves).
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return ECP256, nil
		case elliptic.P384():
			return ECP384, nil
		}
		return "", fmt.Errorf("ECDSA curve %s is not supported (P-256, P-384)", p.Curve.Params().Name)
	case ed25519.PublicKey:
		return Ed25519, nil
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
		return "", fmt.Errorf("RSA key of %d bits is not supported (2048, 3072, 4096)", p.N.BitLen())
	}
	return "", fmt.Errorf("public key type %T is not supported", pub)
}

// ParsePrivateKeyPEM reads a private key in PKCS#8 ("PRIVATE KEY"), SEC 1
// ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") PEM. The decoded bytes
// are cleared before it returns.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	defer clear(block.Bytes)
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", key)
	}
	return signer, nil
}

// MarshalPrivateKeyPEM is the key as PKCS#8 PEM.
func MarshalPrivateKeyPEM(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	defer clear(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}
