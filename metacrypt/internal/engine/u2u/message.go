package u2u

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// FormatV1 is the first byte of a version 1 message.
const FormatV1 = 1

// Sizes of the message format.
const (
	keySize = 32 // an X25519 public key
	tagSize = 16 // AES-GCM's tag
	// MaxPlaintext bounds a message's plaintext: u2u carries secrets and
	// notes between people, not bulk data.
	MaxPlaintext = 1 << 20
)

// usernameRE is an MCIAS account name.
var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// header is a message's clear part, all of it authenticated: who sent it
// with which key version, to whom with which key version, when, and the
// ephemeral public key.
type header struct {
	sender           string
	senderVersion    uint32
	recipient        string
	recipientVersion uint32
	sentAt           time.Time
	ephemeral        []byte
}

// marshal writes the header in the version 1 format:
//
//	byte    1 (the format version)
//	uint16  length of the sender's username, then the username
//	uint32  sender's key version
//	uint16  length of the recipient's username, then the username
//	uint32  recipient's key version
//	uint64  sending time, Unix seconds
//	[32]    ephemeral X25519 public key
//
// big-endian; the AES-256-GCM ciphertext and tag follow.
func (h header) marshal() []byte {
	b := []byte{FormatV1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.sender))) //nolint:gosec // usernames are at most 128 bytes
	b = append(b, h.sender...)
	b = binary.BigEndian.AppendUint32(b, h.senderVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.recipient))) //nolint:gosec // as above
	b = append(b, h.recipient...)
	b = binary.BigEndian.AppendUint32(b, h.recipientVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(h.sentAt.Unix())) //nolint:gosec // after 1970
	return append(b, h.ephemeral...)
}

var errMessage = errors.New("not a u2u message")

// parseMessage splits a message into its header, the header's bytes and
// the ciphertext, checking every field's form.
func parseMessage(m []byte) (header, []byte, []byte, error) {
	var h header
	rest := m
	take := func(n int) []byte {
		if len(rest) < n {
			rest = nil
			return nil
		}
		out := rest[:n]
		rest = rest[n:]
		return out
	}
	name := func() string {
		l := take(2)
		if l == nil {
			return ""
		}
		return string(take(int(binary.BigEndian.Uint16(l))))
	}
	u32 := func() uint32 {
		if b := take(4); b != nil {
			return binary.BigEndian.Uint32(b)
		}
		return 0
	}
	if v := take(1); v == nil || v[0] != FormatV1 {
		return h, nil, nil, fmt.Errorf("%w (format version)", errMessage)
	}
	h.sender, h.senderVersion = name(), u32()
	h.recipient, h.recipientVersion = name(), u32()
	if b := take(8); b != nil {
		h.sentAt = time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC() //nolint:gosec // any value is a time
	}
	h.ephemeral = take(keySize)
	if h.ephemeral == nil || len(rest) < tagSize {
		return h, nil, nil, fmt.Errorf("%w (truncated)", errMessage)
	}
	if !usernameRE.MatchString(h.sender) || !usernameRE.MatchString(h.recipient) || h.senderVersion == 0 || h.recipientVersion == 0 {
		return h, nil, nil, fmt.Errorf("%w (sender or recipient)", errMessage)
	}
	return h, m[:len(m)-len(rest)], rest, nil
}
