package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// envelopeVersion is the first byte of every ciphertext: version, then
// the 12-byte GCM nonce, then the sealed bytes with their tag.
const envelopeVersion = 1

const nonceSize = 12

// errOpen is any failure to decrypt: wrong key, altered bytes, or bytes
// moved from another row (their additional data differs).
var errOpen = errors.New("ciphertext does not decrypt")

func encrypt(key, plaintext, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+gcm.Overhead())
	out[0] = envelopeVersion
	if _, err := rand.Read(out[1 : 1+nonceSize]); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	return gcm.Seal(out, out[1:1+nonceSize], plaintext, aad), nil
}

func decrypt(key, blob, aad []byte) ([]byte, error) {
	if len(blob) < 1+nonceSize+16 || blob[0] != envelopeVersion {
		return nil, errOpen
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, blob[1:1+nonceSize], blob[1+nonceSize:], aad)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}

// aad builds additional data from a purpose and length-prefixed parts, so
// that no two distinct identities encode alike ("a","bc" ≠ "ab","c").
func aad(purpose string, parts ...string) []byte {
	b := []byte(purpose)
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p))) //nolint:gosec // parts are short identifiers
		b = append(b, p...)
	}
	return b
}

func rowAAD(owner, kind, key string) []byte {
	return aad("metacrypt/secret/v1", owner, kind, key)
}

func dekAAD(owner string, version int64) []byte {
	return aad("metacrypt/dek/v1", owner, fmt.Sprint(version))
}

func mekAAD(version int64) []byte {
	return aad("metacrypt/mek/v1", fmt.Sprint(version))
}
