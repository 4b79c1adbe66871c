package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6238 as authenticator apps implement it is HMAC-SHA-1, which SHA-1 collisions do not weaken.
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
)

const (
	// Digits is the length of a code.
	Digits = 6
	// Period is how long one code lasts.
	Period = 30 * time.Second
)

const (
	secretBytes = 20 // RFC 4226 §4 recommends 160 bits
	// minSecretBytes is RFC 4226 §4's floor of 128 bits.
	minSecretBytes = 16
	modulus        = 1_000_000 // 10^Digits
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// GenerateSecret returns a new 160-bit shared secret in the form
// authenticator apps expect: upper-case base32 without padding.
func GenerateSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate totp secret: %w", err)
	}
	return b32.EncodeToString(b), nil
}

// normalizeSecret forgives how people copy secrets: lower case, spaces
// between groups, trailing padding.
func normalizeSecret(secret string) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToUpper(r)
	}, secret)
	return strings.TrimRight(s, "=")
}

func decodeSecret(secret string) ([]byte, error) {
	key, err := b32.DecodeString(normalizeSecret(secret))
	if err != nil {
		return nil, fmt.Errorf("decode totp secret: %w", err)
	}
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("decode totp secret: %d bytes, want at least %d", len(key), minSecretBytes)
	}
	return key, nil
}

// Step returns the RFC 6238 time step containing t: floor(unix seconds / 30).
func Step(t time.Time) int64 {
	p := int64(Period / time.Second)
	s := t.Unix()
	if s < 0 {
		return (s - p + 1) / p
	}
	return s / p
}

// Code returns the code for secret at time t, zero-padded to Digits.
func Code(secret string, t time.Time) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	step := Step(t)
	if step < 0 {
		return "", errors.New("totp code: time before the unix epoch")
	}
	return hotp(key, uint64(step)), nil
}

// hotp is RFC 4226 §5.3 truncated to Digits decimal digits.
func hotp(key []byte, counter uint64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", Digits, bin%modulus)
}

// Validate checks code against the steps either side of now (one step of
// clock drift each way) and returns the step it matched. Only steps after
// lastStep count, so once the caller stores the returned step the same code
// (and any earlier one) is refused: a code works once. Input that is not
// exactly Digits ASCII digits, or an undecodable secret, is refused without
// computing anything.
func Validate(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	if len(code) != Digits {
		return 0, false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return 0, false
		}
	}
	key, err := decodeSecret(secret)
	if err != nil {
		return 0, false
	}
	current := Step(now)
	// Every candidate is computed and compared, matched or not, so the time
	// taken does not say which step (if any) the code belongs to.
	for s := current - 1; s <= current+1; s++ {
		if s <= lastStep || s < 0 {
			continue
		}
		match := subtle.ConstantTimeCompare([]byte(hotp(key, uint64(s))), []byte(code)) == 1
		if match && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// URI returns the otpauth:// key URI that enrols secret in an authenticator
// app (usually shown as a QR code), labelled "issuer:account".
func URI(secret, issuer, account string) string {
	label := escapeLabel(account)
	query := "secret=" + normalizeSecret(secret)
	if issuer != "" {
		label = escapeLabel(issuer) + ":" + label
		query += "&issuer=" + escapeQuery(issuer)
	}
	query += fmt.Sprintf("&algorithm=SHA1&digits=%d&period=%d", Digits, int(Period/time.Second))
	return "otpauth://totp/" + label + "?" + query
}

// escapeLabel escapes one half of the label. A colon inside it would be read
// as the issuer separator, so it is escaped too.
func escapeLabel(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), ":", "%3A")
}

// escapeQuery uses %20 for spaces: some apps show a "+" literally.
func escapeQuery(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
