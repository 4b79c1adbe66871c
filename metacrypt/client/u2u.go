package client

import (
	"context"
	"time"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// U2UKeys are a user's X25519 public keys, every version.
type U2UKeys struct {
	Username      string          `json:"username"`
	LatestVersion int             `json:"latest_version"`
	Versions      []U2UKeyVersion `json:"versions"`
}

// U2UKeyVersion is one version of a user's public key.
type U2UKeyVersion struct {
	Version   int       `json:"version"`
	PublicKey []byte    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
}

func u2uKeysOf(k *mcv1.U2UUserKeys) U2UKeys {
	out := U2UKeys{Username: k.GetUsername(), LatestVersion: int(k.GetLatestVersion())}
	for _, v := range k.GetVersions() {
		out.Versions = append(out.Versions, U2UKeyVersion{Version: int(v.GetVersion()), PublicKey: v.GetPublicKey(), CreatedAt: v.GetCreatedAt().AsTime()})
	}
	return out
}

// CreateU2UKey creates the caller's key pair (sending creates it too).
func (c *Client) CreateU2UKey(ctx context.Context, mount string) (U2UKeys, error) {
	r, err := c.u2u.CreateKey(ctx, &mcv1.U2UCreateKeyRequest{Mount: mount})
	if err != nil {
		return U2UKeys{}, c.conn.Err(err)
	}
	return u2uKeysOf(r.GetKeys()), nil
}

// RotateU2UKey adds a version to the caller's keys; old messages still
// open.
func (c *Client) RotateU2UKey(ctx context.Context, mount string) (U2UKeys, error) {
	r, err := c.u2u.RotateKey(ctx, &mcv1.U2URotateKeyRequest{Mount: mount})
	if err != nil {
		return U2UKeys{}, c.conn.Err(err)
	}
	return u2uKeysOf(r.GetKeys()), nil
}

// U2UKey returns a user's public keys.
func (c *Client) U2UKey(ctx context.Context, mount, username string) (U2UKeys, error) {
	r, err := c.u2u.GetKey(ctx, &mcv1.U2UGetKeyRequest{Mount: mount, Username: username})
	if err != nil {
		return U2UKeys{}, c.conn.Err(err)
	}
	return u2uKeysOf(r.GetKeys()), nil
}

// U2UKeys lists every user's public keys.
func (c *Client) U2UKeys(ctx context.Context, mount string) ([]U2UKeys, error) {
	r, err := c.u2u.ListKeys(ctx, &mcv1.U2UListKeysRequest{Mount: mount})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]U2UKeys, 0, len(r.GetKeys()))
	for _, k := range r.GetKeys() {
		out = append(out, u2uKeysOf(k))
	}
	return out, nil
}

// Sent is a sealed message for its recipient only.
type Sent struct {
	Message             []byte    `json:"message"`
	SenderKeyVersion    int       `json:"sender_key_version"`
	RecipientKeyVersion int       `json:"recipient_key_version"`
	SentAt              time.Time `json:"sent_at"`
}

// Send seals plaintext (at most 1 MiB) from the caller to recipient;
// associatedData, if any, must be given again to open it.
func (c *Client) Send(ctx context.Context, mount, recipient string, plaintext, associatedData []byte) (Sent, error) {
	r, err := c.u2u.Send(ctx, &mcv1.U2USendRequest{Mount: mount, Recipient: recipient, Plaintext: plaintext, AssociatedData: associatedData})
	if err != nil {
		return Sent{}, c.conn.Err(err)
	}
	return Sent{Message: r.GetMessage(), SenderKeyVersion: int(r.GetSenderKeyVersion()), RecipientKeyVersion: int(r.GetRecipientKeyVersion()),
		SentAt: r.GetSentAt().AsTime()}, nil
}

// Opened is an opened message and who sent it.
type Opened struct {
	Sender              string    `json:"sender"`
	SenderKeyVersion    int       `json:"sender_key_version"`
	RecipientKeyVersion int       `json:"recipient_key_version"`
	SentAt              time.Time `json:"sent_at"`
	Plaintext           []byte    `json:"plaintext"`
}

// Open opens a message addressed to the caller.
func (c *Client) Open(ctx context.Context, mount string, message, associatedData []byte) (Opened, error) {
	r, err := c.u2u.Open(ctx, &mcv1.U2UOpenRequest{Mount: mount, Message: message, AssociatedData: associatedData})
	if err != nil {
		return Opened{}, c.conn.Err(err)
	}
	return Opened{Sender: r.GetSender(), SenderKeyVersion: int(r.GetSenderKeyVersion()), RecipientKeyVersion: int(r.GetRecipientKeyVersion()),
		SentAt: r.GetSentAt().AsTime(), Plaintext: r.GetPlaintext()}, nil
}
