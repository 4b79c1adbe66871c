package client

import (
	"context"
	"time"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// TransitKey describes a transit key without its material.
type TransitKey struct {
	Name                 string              `json:"name"`
	Type                 string              `json:"type"`
	Derived              bool                `json:"derived"`
	Exportable           bool                `json:"exportable"`
	DeletionAllowed      bool                `json:"deletion_allowed"`
	LatestVersion        int                 `json:"latest_version"`
	MinDecryptionVersion int                 `json:"min_decryption_version"`
	MinEncryptionVersion int                 `json:"min_encryption_version"`
	CreatedAt            time.Time           `json:"created_at"`
	Versions             []TransitKeyVersion `json:"versions"`
}

// TransitKeyVersion is one version of a key; PublicKeyPEM is set for the
// signing types.
type TransitKeyVersion struct {
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	PublicKeyPEM string    `json:"public_key_pem,omitempty"`
}

func transitKeyOf(r *mcv1.TransitKeyResponse) TransitKey {
	k := r.GetKey()
	out := TransitKey{
		Name: k.GetName(), Type: k.GetType(), Derived: k.GetDerived(), Exportable: k.GetExportable(), DeletionAllowed: k.GetDeletionAllowed(),
		LatestVersion: int(k.GetLatestVersion()), MinDecryptionVersion: int(k.GetMinDecryptionVersion()),
		MinEncryptionVersion: int(k.GetMinEncryptionVersion()), CreatedAt: k.GetCreatedAt().AsTime(),
	}
	for _, v := range k.GetVersions() {
		out.Versions = append(out.Versions, TransitKeyVersion{Version: int(v.GetVersion()), CreatedAt: v.GetCreatedAt().AsTime(), PublicKeyPEM: v.GetPublicKeyPem()})
	}
	return out
}

// i32 narrows what the server bounds (versions, sizes) for the wire.
func i32(n int) int32 { return int32(n) } //nolint:gosec // the server refuses what does not fit

// TransitKeyRequest asks for a key: Type is aes256-gcm96 (default),
// chacha20-poly1305, ed25519, ecdsa-p256 or hmac.
type TransitKeyRequest struct {
	Name, Type          string
	Derived, Exportable bool
}

// CreateTransitKey creates a key with its first version.
func (c *Client) CreateTransitKey(ctx context.Context, mount string, r TransitKeyRequest) (TransitKey, error) {
	resp, err := c.transit.CreateKey(ctx, &mcv1.TransitCreateKeyRequest{Mount: mount, Name: r.Name, Type: r.Type, Derived: r.Derived, Exportable: r.Exportable})
	if err != nil {
		return TransitKey{}, c.conn.Err(err)
	}
	return transitKeyOf(resp), nil
}

// TransitKey describes one key.
func (c *Client) TransitKey(ctx context.Context, mount, name string) (TransitKey, error) {
	resp, err := c.transit.GetKey(ctx, &mcv1.TransitKeyRequest{Mount: mount, Name: name})
	if err != nil {
		return TransitKey{}, c.conn.Err(err)
	}
	return transitKeyOf(resp), nil
}

// TransitKeys lists the key names.
func (c *Client) TransitKeys(ctx context.Context, mount string) ([]string, error) {
	resp, err := c.transit.ListKeys(ctx, &mcv1.TransitListKeysRequest{Mount: mount})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	return resp.GetKeys(), nil
}

// TransitKeyConfig changes a key's settings; nil fields are unchanged.
type TransitKeyConfig struct {
	MinDecryptionVersion, MinEncryptionVersion *int
	DeletionAllowed                            *bool
}

// ConfigureTransitKey changes a key's settings.
func (c *Client) ConfigureTransitKey(ctx context.Context, mount, name string, cfg TransitKeyConfig) (TransitKey, error) {
	req := &mcv1.TransitKeyConfigRequest{Mount: mount, Name: name, DeletionAllowed: cfg.DeletionAllowed}
	if cfg.MinDecryptionVersion != nil {
		v := i32(*cfg.MinDecryptionVersion)
		req.MinDecryptionVersion = &v
	}
	if cfg.MinEncryptionVersion != nil {
		v := i32(*cfg.MinEncryptionVersion)
		req.MinEncryptionVersion = &v
	}
	resp, err := c.transit.UpdateKeyConfig(ctx, req)
	if err != nil {
		return TransitKey{}, c.conn.Err(err)
	}
	return transitKeyOf(resp), nil
}

// RotateTransitKey adds a version, which new requests use.
func (c *Client) RotateTransitKey(ctx context.Context, mount, name string) (TransitKey, error) {
	resp, err := c.transit.RotateKey(ctx, &mcv1.TransitKeyRequest{Mount: mount, Name: name})
	if err != nil {
		return TransitKey{}, c.conn.Err(err)
	}
	return transitKeyOf(resp), nil
}

// DeleteTransitKey deletes a key whose deletion_allowed is set.
func (c *Client) DeleteTransitKey(ctx context.Context, mount, name string) error {
	_, err := c.transit.DeleteKey(ctx, &mcv1.TransitKeyRequest{Mount: mount, Name: name})
	return c.conn.Err(err)
}

// TransitExport is an exported key's material: raw 32-byte keys (and
// HMAC keys) for the symmetric types, PKCS#8 DER for the signing types.
type TransitExport struct {
	Name     string                   `json:"name"`
	Type     string                   `json:"type"`
	Versions []TransitExportedVersion `json:"versions"`
}

// TransitExportedVersion is one exported version.
type TransitExportedVersion struct {
	Version int    `json:"version"`
	Key     []byte `json:"key"`
	HMACKey []byte `json:"hmac_key,omitempty"`
}

// ExportTransitKey returns an exportable key's version (every version
// from min_decryption_version when version is 0).
func (c *Client) ExportTransitKey(ctx context.Context, mount, name string, version int) (TransitExport, error) {
	resp, err := c.transit.ExportKey(ctx, &mcv1.TransitExportKeyRequest{Mount: mount, Name: name, Version: i32(version)})
	if err != nil {
		return TransitExport{}, c.conn.Err(err)
	}
	out := TransitExport{Name: resp.GetName(), Type: resp.GetType()}
	for _, v := range resp.GetVersions() {
		out.Versions = append(out.Versions, TransitExportedVersion{Version: int(v.GetVersion()), Key: v.GetKey(), HMACKey: v.GetHmacKey()})
	}
	return out, nil
}

// EncryptRequest asks for Plaintext to be encrypted with Key; AssociatedData
// is authenticated (decryption needs the same), Context derives the key
// of a derived key; KeyVersion 0 is the latest.
type EncryptRequest struct {
	Key                                string
	Plaintext, AssociatedData, Context []byte
	KeyVersion                         int
}

// Ciphertext is "metacrypt:v<N>:<base64>" and its key version.
type Ciphertext struct {
	Ciphertext string `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
}

// Encrypt encrypts.
func (c *Client) Encrypt(ctx context.Context, mount string, r EncryptRequest) (Ciphertext, error) {
	resp, err := c.transit.Encrypt(ctx, &mcv1.TransitEncryptRequest{
		Mount: mount, Key: r.Key, Plaintext: r.Plaintext, AssociatedData: r.AssociatedData, Context: r.Context, KeyVersion: i32(r.KeyVersion),
	})
	if err != nil {
		return Ciphertext{}, c.conn.Err(err)
	}
	return Ciphertext{Ciphertext: resp.GetCiphertext(), KeyVersion: int(resp.GetKeyVersion())}, nil
}

// DecryptRequest asks for a ciphertext to be decrypted (or, with
// KeyVersion for Rewrap, encrypted again with that version; 0 the latest).
type DecryptRequest struct {
	Key, Ciphertext         string
	AssociatedData, Context []byte
	KeyVersion              int
}

// Plaintext is a decryption's result.
type Plaintext struct {
	Plaintext  []byte `json:"plaintext"`
	KeyVersion int    `json:"key_version"`
}

// Decrypt decrypts with the version the ciphertext names.
func (c *Client) Decrypt(ctx context.Context, mount string, r DecryptRequest) (Plaintext, error) {
	resp, err := c.transit.Decrypt(ctx, &mcv1.TransitDecryptRequest{
		Mount: mount, Key: r.Key, Ciphertext: r.Ciphertext, AssociatedData: r.AssociatedData, Context: r.Context,
	})
	if err != nil {
		return Plaintext{}, c.conn.Err(err)
	}
	return Plaintext{Plaintext: resp.GetPlaintext(), KeyVersion: int(resp.GetKeyVersion())}, nil
}

// Rewrap encrypts a ciphertext again with the latest (or r.KeyVersion)
// version; the plaintext never leaves Metacrypt.
func (c *Client) Rewrap(ctx context.Context, mount string, r DecryptRequest) (Ciphertext, error) {
	resp, err := c.transit.Rewrap(ctx, &mcv1.TransitRewrapRequest{
		Mount: mount, Key: r.Key, Ciphertext: r.Ciphertext, AssociatedData: r.AssociatedData, Context: r.Context, KeyVersion: i32(r.KeyVersion),
	})
	if err != nil {
		return Ciphertext{}, c.conn.Err(err)
	}
	return Ciphertext{Ciphertext: resp.GetCiphertext(), KeyVersion: int(resp.GetKeyVersion())}, nil
}

// BatchItem is one item of a batch: Plaintext to encrypt, or Ciphertext
// to decrypt or rewrap, with its associated data and context. In JSON,
// byte fields are standard base64.
type BatchItem struct {
	Plaintext      []byte `json:"plaintext,omitempty"`
	Ciphertext     string `json:"ciphertext,omitempty"`
	AssociatedData []byte `json:"associated_data,omitempty"`
	Context        []byte `json:"context,omitempty"`
}

// BatchResult is one item's outcome: its ciphertext or plaintext, or its
// error naming the field ("items[3].ciphertext").
type BatchResult struct {
	Ciphertext string `json:"ciphertext,omitempty"`
	Plaintext  []byte `json:"plaintext,omitempty"`
	KeyVersion int    `json:"key_version,omitempty"`
	Error      string `json:"error,omitempty"`
	Field      string `json:"field,omitempty"`
}

func batchOf(resp *mcv1.TransitBatchResponse) []BatchResult {
	out := make([]BatchResult, 0, len(resp.GetResults()))
	for _, r := range resp.GetResults() {
		out = append(out, BatchResult{Ciphertext: r.GetCiphertext(), Plaintext: r.GetPlaintext(), KeyVersion: int(r.GetKeyVersion()), Error: r.GetError(), Field: r.GetField()})
	}
	return out
}

func decryptItemsPB(items []BatchItem) []*mcv1.TransitDecryptItem {
	out := make([]*mcv1.TransitDecryptItem, len(items))
	for i, it := range items {
		out[i] = &mcv1.TransitDecryptItem{Ciphertext: it.Ciphertext, AssociatedData: it.AssociatedData, Context: it.Context}
	}
	return out
}

// EncryptBatch encrypts up to 1000 items with one key (keyVersion 0: the
// latest); items fail one by one.
func (c *Client) EncryptBatch(ctx context.Context, mount, key string, keyVersion int, items []BatchItem) ([]BatchResult, error) {
	req := &mcv1.TransitEncryptBatchRequest{Mount: mount, Key: key, KeyVersion: i32(keyVersion)}
	for _, it := range items {
		req.Items = append(req.Items, &mcv1.TransitEncryptItem{Plaintext: it.Plaintext, AssociatedData: it.AssociatedData, Context: it.Context})
	}
	resp, err := c.transit.EncryptBatch(ctx, req)
	if err != nil {
		return nil, c.conn.Err(err)
	}
	return batchOf(resp), nil
}

// DecryptBatch decrypts up to 1000 items with one key.
func (c *Client) DecryptBatch(ctx context.Context, mount, key string, items []BatchItem) ([]BatchResult, error) {
	resp, err := c.transit.DecryptBatch(ctx, &mcv1.TransitDecryptBatchRequest{Mount: mount, Key: key, Items: decryptItemsPB(items)})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	return batchOf(resp), nil
}

// RewrapBatch rewraps up to 1000 items with one key (keyVersion 0: the
// latest).
func (c *Client) RewrapBatch(ctx context.Context, mount, key string, keyVersion int, items []BatchItem) ([]BatchResult, error) {
	resp, err := c.transit.RewrapBatch(ctx, &mcv1.TransitRewrapBatchRequest{Mount: mount, Key: key, KeyVersion: i32(keyVersion), Items: decryptItemsPB(items)})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	return batchOf(resp), nil
}

// DataKeyRequest asks for a data key of Bits (128, 256 default, 512)
// wrapped by Key, and in the clear too with IncludePlaintext.
type DataKeyRequest struct {
	Key                     string
	Bits                    int
	IncludePlaintext        bool
	AssociatedData, Context []byte
}

// DataKey is a generated data key: Ciphertext wraps it; Plaintext is set
// when asked for.
type DataKey struct {
	Ciphertext string `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
	Plaintext  []byte `json:"plaintext,omitempty"`
}

// GenerateDataKey draws a data key for envelope encryption.
func (c *Client) GenerateDataKey(ctx context.Context, mount string, r DataKeyRequest) (DataKey, error) {
	resp, err := c.transit.GenerateDataKey(ctx, &mcv1.TransitDataKeyRequest{
		Mount: mount, Key: r.Key, Bits: i32(r.Bits), IncludePlaintext: r.IncludePlaintext, AssociatedData: r.AssociatedData, Context: r.Context,
	})
	if err != nil {
		return DataKey{}, c.conn.Err(err)
	}
	return DataKey{Ciphertext: resp.GetCiphertext(), KeyVersion: int(resp.GetKeyVersion()), Plaintext: resp.GetPlaintext()}, nil
}

// Signature is "metacrypt:v<N>:<base64>" and its key version (a
// signature or an HMAC).
type Signature struct {
	Signature  string `json:"signature,omitempty"`
	HMAC       string `json:"hmac,omitempty"`
	KeyVersion int    `json:"key_version"`
}

// TransitSign signs input with an ed25519 or ecdsa-p256 key (prehashed:
// input is a SHA-256 digest, ecdsa-p256 only); keyVersion 0 is the
// latest.
func (c *Client) TransitSign(ctx context.Context, mount, key string, input []byte, prehashed bool, keyVersion int) (Signature, error) {
	resp, err := c.transit.Sign(ctx, &mcv1.TransitSignRequest{Mount: mount, Key: key, Input: input, Prehashed: prehashed, KeyVersion: i32(keyVersion)})
	if err != nil {
		return Signature{}, c.conn.Err(err)
	}
	return Signature{Signature: resp.GetSignature(), KeyVersion: int(resp.GetKeyVersion())}, nil
}

// TransitVerify checks a signature; a wrong one is false, a malformed one
// an error.
func (c *Client) TransitVerify(ctx context.Context, mount, key string, input []byte, prehashed bool, signature string) (bool, error) {
	resp, err := c.transit.Verify(ctx, &mcv1.TransitVerifyRequest{Mount: mount, Key: key, Input: input, Prehashed: prehashed, Signature: signature})
	if err != nil {
		return false, c.conn.Err(err)
	}
	return resp.GetValid(), nil
}

// TransitHMAC computes an HMAC (algorithm sha2-256, the default, or
// sha2-512); keyVersion 0 is the latest.
func (c *Client) TransitHMAC(ctx context.Context, mount, key string, input []byte, algorithm string, keyVersion int) (Signature, error) {
	resp, err := c.transit.HMAC(ctx, &mcv1.TransitHMACRequest{Mount: mount, Key: key, Input: input, Algorithm: algorithm, KeyVersion: i32(keyVersion)})
	if err != nil {
		return Signature{}, c.conn.Err(err)
	}
	return Signature{HMAC: resp.GetHmac(), KeyVersion: int(resp.GetKeyVersion())}, nil
}

// TransitVerifyHMAC checks an HMAC in constant time.
func (c *Client) TransitVerifyHMAC(ctx context.Context, mount, key string, input []byte, algorithm, hmac string) (bool, error) {
	resp, err := c.transit.VerifyHMAC(ctx, &mcv1.TransitVerifyHMACRequest{Mount: mount, Key: key, Input: input, Algorithm: algorithm, Hmac: hmac})
	if err != nil {
		return false, c.conn.Err(err)
	}
	return resp.GetValid(), nil
}
