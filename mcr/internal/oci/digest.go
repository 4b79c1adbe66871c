package oci

import (
	_ "crypto/sha256" // registers sha256 with go-digest
	_ "crypto/sha512" // registers sha512 with go-digest
	"fmt"
	"hash"

	"github.com/opencontainers/go-digest"
)

// Digest is a content digest; only Supported algorithms are ever parsed
// into one.
type Digest = digest.Digest

// Algorithms MCR accepts. sha384 is registered by go-digest but unused by
// any client and refused here.
var supported = map[digest.Algorithm]bool{digest.SHA256: true, digest.SHA512: true}

// ParseDigest validates s ("sha256:<64 hex>") and checks its algorithm is
// sha256 or sha512.
func ParseDigest(s string) (Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", NewError(ErrDigestInvalid, fmt.Sprintf("invalid digest %q", truncate(s)))
	}
	if !supported[d.Algorithm()] {
		return "", NewError(ErrDigestInvalid, fmt.Sprintf("unsupported digest algorithm %q", d.Algorithm()))
	}
	return d, nil
}

// ParseAlgorithm validates a digest-algorithm parameter ("" is sha256).
func ParseAlgorithm(s string) (digest.Algorithm, error) {
	if s == "" {
		return digest.SHA256, nil
	}
	a := digest.Algorithm(s)
	if !supported[a] {
		return "", NewError(ErrDigestInvalid, fmt.Sprintf("unsupported digest algorithm %q", truncate(s)))
	}
	return a, nil
}

// NewHash returns a fresh hash for a supported algorithm.
func NewHash(a digest.Algorithm) hash.Hash { return a.Hash() }

// FromBytes digests b with the canonical algorithm (sha256).
func FromBytes(b []byte) Digest { return digest.FromBytes(b) }

// DigestOf digests b with algorithm a.
func DigestOf(a digest.Algorithm, b []byte) Digest { return a.FromBytes(b) }
