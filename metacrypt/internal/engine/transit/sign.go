package transit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// SignRequest asks for a signature.
type SignRequest struct {
	Key   string
	Input []byte
	// Prehashed says Input is already a SHA-256 digest (ecdsa-p256 only;
	// Ed25519 signs the message itself).
	Prehashed bool
	// KeyVersion is the version to sign with; 0 means the latest.
	KeyVersion int
}

// VerifyRequest asks whether a signature is valid.
type VerifyRequest struct {
	Key       string
	Input     []byte
	Prehashed bool
	Signature string
}

// Signature is a signature: "metacrypt:v<N>:<base64>", the bytes being
// Ed25519's 64 or ECDSA's ASN.1 DER over SHA-256.
type Signature struct {
	Signature  string `json:"signature"`
	KeyVersion int    `json:"key_version"`
}

// HMACRequest asks for an HMAC.
type HMACRequest struct {
	Key   string
	Input []byte
	// Algorithm is sha2-256 (default) or sha2-512.
	Algorithm string
	// KeyVersion is the version to use; 0 means the latest.
	KeyVersion int
}

// VerifyHMACRequest asks whether an HMAC is valid.
type VerifyHMACRequest struct {
	Key       string
	Input     []byte
	Algorithm string
	HMAC      string
}

// HMACResult is an HMAC: "metacrypt:v<N>:<base64>".
type HMACResult struct {
	HMAC       string `json:"hmac"`
	KeyVersion int    `json:"key_version"`
}

// Sign signs with a signing key's latest (or requested) version (sign on
// "key/<name>").
func (s *Service) Sign(ctx context.Context, c engine.Caller, mount string, r SignRequest) (Signature, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpSign)
	defer k.clear()
	if err != nil {
		return Signature{}, err
	}
	digest, opts, err := k.signingInput(r.Input, r.Prehashed)
	if err != nil {
		return Signature{}, err
	}
	n, err := k.encryptionVersion("key_version", r.KeyVersion)
	if err != nil {
		return Signature{}, err
	}
	signer, err := k.version(n).signer(k.Type)
	if err != nil {
		return Signature{}, err
	}
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return Signature{}, err
	}
	return Signature{Signature: Format(n, sig), KeyVersion: n}, nil
}

// Verify checks a signature with the version it names, which must be at
// least min_decryption_version (verify on "key/<name>"). An invalid
// signature is (false, nil); a malformed one an error naming it.
func (s *Service) Verify(ctx context.Context, c engine.Caller, mount string, r VerifyRequest) (bool, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpVerify)
	defer k.clear()
	if err != nil {
		return false, err
	}
	digest, _, err := k.signingInput(r.Input, r.Prehashed)
	if err != nil {
		return false, err
	}
	n, sig, err := Parse("signature", r.Signature)
	if err != nil {
		return false, err
	}
	if err := k.decryptionVersion("signature", n); err != nil {
		return false, err
	}
	signer, err := k.version(n).signer(k.Type)
	if err != nil {
		return false, err
	}
	switch pub := signer.Public().(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(pub, digest, sig), nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(pub, digest, sig), nil
	}
	return false, nil
}

// signingInput is what the key signs: the message for Ed25519, its
// SHA-256 (or the given digest) for ECDSA.
func (k *keyRecord) signingInput(in []byte, prehashed bool) ([]byte, crypto.SignerOpts, error) {
	switch k.Type {
	case Ed25519:
		if prehashed {
			return nil, nil, apierr.InvalidField("prehashed", "Ed25519 signs the message itself")
		}
		return in, crypto.Hash(0), nil
	case ECDSAP256:
		if !prehashed {
			d := sha256.Sum256(in)
			return d[:], crypto.SHA256, nil
		}
		if len(in) != sha256.Size {
			return nil, nil, apierr.InvalidField("input", "a SHA-256 digest is %d bytes, got %d", sha256.Size, len(in))
		}
		return in, crypto.SHA256, nil
	}
	return nil, nil, apierr.InvalidField("key", "key %s is of type %s, which does not sign", k.Name, k.Type)
}

// HMAC computes an HMAC with the latest (or requested) version's HMAC
// key (hmac on "key/<name>").
func (s *Service) HMAC(ctx context.Context, c engine.Caller, mount string, r HMACRequest) (HMACResult, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpHMAC)
	defer k.clear()
	if err != nil {
		return HMACResult{}, err
	}
	h, err := hashFor(r.Algorithm)
	if err != nil {
		return HMACResult{}, err
	}
	n, err := k.encryptionVersion("key_version", r.KeyVersion)
	if err != nil {
		return HMACResult{}, err
	}
	sum, err := k.mac(h, n, r.Input)
	if err != nil {
		return HMACResult{}, err
	}
	return HMACResult{HMAC: Format(n, sum), KeyVersion: n}, nil
}

// VerifyHMAC checks an HMAC in constant time, with the version it names
// (at least min_decryption_version; verify on "key/<name>").
func (s *Service) VerifyHMAC(ctx context.Context, c engine.Caller, mount string, r VerifyHMACRequest) (bool, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpVerify)
	defer k.clear()
	if err != nil {
		return false, err
	}
	h, err := hashFor(r.Algorithm)
	if err != nil {
		return false, err
	}
	n, want, err := Parse("hmac", r.HMAC)
	if err != nil {
		return false, err
	}
	if err := k.decryptionVersion("hmac", n); err != nil {
		return false, err
	}
	sum, err := k.mac(h, n, r.Input)
	if err != nil {
		return false, err
	}
	return hmac.Equal(sum, want), nil
}

func hashFor(algorithm string) (func() hash.Hash, error) {
	switch algorithm {
	case "", "sha2-256":
		return sha256.New, nil
	case "sha2-512":
		return sha512.New, nil
	}
	return nil, apierr.InvalidField("algorithm", "must be sha2-256 or sha2-512, got %q", algorithm)
}

func (k *keyRecord) mac(h func() hash.Hash, n int, in []byte) ([]byte, error) {
	if !k.Type.HMACs() {
		return nil, apierr.InvalidField("key", "key %s is of type %s, which has no HMAC key", k.Name, k.Type)
	}
	key := k.version(n).HMACKey
	if k.Type == HMAC {
		key = k.version(n).Key
	}
	m := hmac.New(h, key)
	m.Write(in)
	return m.Sum(nil), nil
}
