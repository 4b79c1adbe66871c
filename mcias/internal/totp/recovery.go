package totp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
)

const (
	// recoveryAlphabet is Crockford's base32: no i, l, o or u, so what a user
	// reads off paper cannot be mistyped as another symbol. Being 32 long,
	// each random byte's low 5 bits pick a symbol without bias.
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	recoveryLength   = 12 // 60 bits
	maxRecoveryCodes = 100
)

// GenerateRecoveryCodes returns n distinct single-use recovery codes, each
// 12 random symbols (60 bits) formatted xxxx-xxxx-xxxx in lower case.
func GenerateRecoveryCodes(n int) ([]string, error) {
	if n < 1 || n > maxRecoveryCodes {
		return nil, fmt.Errorf("generate recovery codes: count %d outside 1..%d", n, maxRecoveryCodes)
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	buf := make([]byte, recoveryLength)
	for len(codes) < n {
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("generate recovery codes: %w", err)
		}
		var b strings.Builder
		for i, r := range buf {
			if i > 0 && i%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[r&31])
		}
		if code := b.String(); !seen[code] {
			seen[code] = true
			codes = append(codes, code)
		}
	}
	return codes, nil
}

// NormalizeRecoveryCode puts a recovery code as typed into the form it was
// hashed in: lower case, without spaces or dashes, with the letters Crockford
// base32 leaves out read as the digits they resemble (i and l as 1, o as 0).
func NormalizeRecoveryCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch r = unicode.ToLower(r); {
		case r == '-' || unicode.IsSpace(r):
			return -1
		case r == 'i' || r == 'l':
			return '1'
		case r == 'o':
			return '0'
		}
		return r
	}, s)
}

// HashRecoveryCode returns the hex SHA-256 of the normalized code, the form
// in which codes are stored. Codes carry 60 random bits, so a fast hash is
// enough: there is no dictionary to try.
func HashRecoveryCode(code string) string {
	sum := sha256.Sum256([]byte(NormalizeRecoveryCode(code)))
	return hex.EncodeToString(sum[:])
}
