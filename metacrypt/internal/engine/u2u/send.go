package u2u

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// kdfLabel starts the HKDF info of a version 1 message.
const kdfLabel = "metacrypt/u2u/v1\x00"

// SendRequest asks for a message to a user.
type SendRequest struct {
	Recipient string
	Plaintext []byte
	// AssociatedData is authenticated, not encrypted or carried: the
	// recipient must give the same to open the message.
	AssociatedData []byte
}

// Sent is a sealed message, for the recipient only.
type Sent struct {
	// Message is the version 1 message (see doc.go).
	Message             []byte    `json:"message"`
	SenderKeyVersion    int       `json:"sender_key_version"`
	RecipientKeyVersion int       `json:"recipient_key_version"`
	SentAt              time.Time `json:"sent_at"`
}

// OpenRequest asks for a message to the caller to be opened.
type OpenRequest struct {
	Message        []byte
	AssociatedData []byte
}

// Opened is an opened message and who sent it.
type Opened struct {
	Sender              string    `json:"sender"`
	SenderKeyVersion    int       `json:"sender_key_version"`
	RecipientKeyVersion int       `json:"recipient_key_version"`
	SentAt              time.Time `json:"sent_at"`
	Plaintext           []byte    `json:"plaintext"`
}

// Send seals a message from the caller to the recipient's latest key
// version (send on "user/<recipient>"). The caller's key pair is created
// on first use; the recipient's must exist.
func (s *Service) Send(ctx context.Context, c engine.Caller, mount string, r SendRequest) (Sent, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Sent{}, err
	}
	if _, err := self(c); err != nil {
		return Sent{}, err
	}
	if err := validateUsername("recipient", r.Recipient); err != nil {
		return Sent{}, err
	}
	if len(r.Plaintext) > MaxPlaintext {
		return Sent{}, apierr.InvalidField("plaintext", "longer than %d bytes", MaxPlaintext)
	}
	if err := s.authorize(ctx, c, m, OpSend, resourceUser(r.Recipient)); err != nil {
		return Sent{}, err
	}
	rpub, err := loadPublic(ctx, m, r.Recipient)
	if err != nil {
		return Sent{}, err
	}
	recipientKey, err := rpub.public(uint32(rpub.LatestVersion)) //nolint:gosec // a count of versions
	if err != nil {
		return Sent{}, err
	}
	spub, err := s.ensureKey(ctx, m, c)
	if err != nil {
		return Sent{}, err
	}
	spriv, err := loadPrivate(ctx, m, spub)
	defer spriv.clear()
	if err != nil {
		return Sent{}, err
	}
	h := header{
		sender: c.Username, senderVersion: uint32(spub.LatestVersion), //nolint:gosec // a count of versions
		recipient: r.Recipient, recipientVersion: uint32(rpub.LatestVersion), //nolint:gosec // as above
		sentAt: s.now().Truncate(time.Second),
	}
	senderKey, err := spriv.private(spub, h.senderVersion)
	if err != nil {
		return Sent{}, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Sent{}, err
	}
	h.ephemeral = eph.PublicKey().Bytes()
	hb := h.marshal()
	dh1, err := eph.ECDH(recipientKey)
	if err != nil {
		return Sent{}, err
	}
	dh2, err := senderKey.ECDH(recipientKey)
	if err != nil {
		return Sent{}, err
	}
	aead, nonce, err := messageCipher(dh1, dh2, hb, senderKey.PublicKey(), recipientKey)
	if err != nil {
		return Sent{}, err
	}
	msg := aead.Seal(hb, nonce, r.Plaintext, additionalData(hb, r.AssociatedData))
	s.d.Logger.Info("u2u message sent", "mount", m.Name, "from", c.Username, "to", r.Recipient, "bytes", len(r.Plaintext))
	return Sent{Message: msg, SenderKeyVersion: int(h.senderVersion), RecipientKeyVersion: int(h.recipientVersion), SentAt: h.sentAt}, nil
}

// Open opens a message to the caller (open on "user/<self>") and says
// who sent it: the message opens only if the named sender's key sealed
// it to the caller's key, with the same associated data.
func (s *Service) Open(ctx context.Context, c engine.Caller, mount string, r OpenRequest) (Opened, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Opened{}, err
	}
	res, err := self(c)
	if err != nil {
		return Opened{}, err
	}
	if err := s.authorize(ctx, c, m, OpOpen, res); err != nil {
		return Opened{}, err
	}
	h, hb, ct, err := parseMessage(r.Message)
	if err != nil {
		return Opened{}, apierr.InvalidField("message", "%v", err)
	}
	if h.recipient != c.Username {
		return Opened{}, &apierr.Error{Kind: apierr.Denied, Field: "message", Msg: "message: addressed to " + h.recipient + ", not " + c.Username, Err: engine.ErrDenied}
	}
	rpub, err := loadPublic(ctx, m, c.Username)
	if err != nil {
		return Opened{}, err
	}
	if err := rpub.owner(c); err != nil {
		return Opened{}, err
	}
	rpriv, err := loadPrivate(ctx, m, rpub)
	defer rpriv.clear()
	if err != nil {
		return Opened{}, err
	}
	recipientKey, err := rpriv.private(rpub, h.recipientVersion)
	if err != nil {
		return Opened{}, invalidMessage(err)
	}
	spub, err := loadPublic(ctx, m, h.sender)
	if err != nil {
		return Opened{}, invalidMessage(err)
	}
	senderKey, err := spub.public(h.senderVersion)
	if err != nil {
		return Opened{}, invalidMessage(err)
	}
	eph, err := ecdh.X25519().NewPublicKey(h.ephemeral)
	if err != nil {
		return Opened{}, badPoint(err)
	}
	dh1, err := recipientKey.ECDH(eph)
	if err != nil {
		return Opened{}, badPoint(err)
	}
	dh2, err := recipientKey.ECDH(senderKey)
	if err != nil {
		return Opened{}, badPoint(err)
	}
	aead, nonce, err := messageCipher(dh1, dh2, hb, senderKey, recipientKey.PublicKey())
	if err != nil {
		return Opened{}, err
	}
	pt, err := aead.Open(nil, nonce, ct, additionalData(hb, r.AssociatedData))
	if err != nil {
		return Opened{}, apierr.InvalidField("message", "does not open: altered, not sealed by %s, or other associated data", h.sender)
	}
	if pt == nil {
		pt = []byte{}
	}
	return Opened{Sender: h.sender, SenderKeyVersion: int(h.senderVersion), RecipientKeyVersion: int(h.recipientVersion), SentAt: h.sentAt, Plaintext: pt}, nil
}

// invalidMessage turns a missing key or sender into bad input: the
// message names something that does not exist.
func invalidMessage(err error) error {
	if errors.Is(err, engine.ErrNotFound) {
		return apierr.InvalidField("message", "%v", err)
	}
	return err
}

// badPoint is an ephemeral or sender key no shared secret comes from.
func badPoint(err error) error {
	return apierr.InvalidField("message", "unusable public key: %v", err)
}

// messageCipher derives a message's AES-256-GCM key and nonce:
// HKDF-SHA256 with the ephemeral-static and static-static shared secrets
// as input key material, an empty salt, and as info the label, the
// header (identities, versions, time, ephemeral key) and both static
// public keys. Each message has its own ephemeral key, so its own key.
func messageCipher(dh1, dh2, hb []byte, sender, recipient *ecdh.PublicKey) (cipher.AEAD, []byte, error) {
	ikm := append(append(make([]byte, 0, len(dh1)+len(dh2)), dh1...), dh2...)
	defer clear(ikm)
	info := kdfLabel + string(hb) + string(sender.Bytes()) + string(recipient.Bytes())
	okm, err := hkdf.Key(sha256.New, ikm, nil, info, 32+12)
	if err != nil {
		return nil, nil, err
	}
	defer clear(okm[:32])
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	return aead, okm[32:], err
}

// additionalData is the header followed by the caller's associated data
// (the header's length is implied by its own fields).
func additionalData(hb, ad []byte) []byte {
	return append(append(make([]byte, 0, len(hb)+len(ad)), hb...), ad...)
}
