package transit

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// Prefix starts every ciphertext, signature and HMAC:
// "metacrypt:v<version>:<standard base64>".
const Prefix = "metacrypt:v"

// deriveInfo is the HKDF info's label before a derived key's context.
const deriveInfo = "metacrypt/transit/derive/v1\x00"

// The bounds of a request.
const (
	// MaxBatch is the most items a batch request may hold.
	MaxBatch = 1000
	// maxVersion bounds a version number in input.
	maxVersion = 1 << 31
)

// Format writes a versioned value: "metacrypt:v<N>:<base64>".
func Format(version int, raw []byte) string {
	return Prefix + strconv.Itoa(version) + ":" + base64.StdEncoding.EncodeToString(raw)
}

// Parse reads a versioned value written by Format: the version (from 1,
// no leading zeros) and the decoded bytes. Errors name field.
func Parse(field, s string) (int, []byte, error) {
	rest, ok := strings.CutPrefix(s, Prefix)
	digits, b64, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return 0, nil, apierr.InvalidField(field, "not a Metacrypt value (metacrypt:v<version>:<base64>)")
	}
	v, err := strconv.Atoi(digits)
	if err != nil || v < 1 || v >= maxVersion || digits != strconv.Itoa(v) {
		return 0, nil, apierr.InvalidField(field, "%q is not a key version", digits)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return 0, nil, apierr.InvalidField(field, "not standard base64 after the version: %v", err)
	}
	return v, raw, nil
}

// EncryptRequest asks for plaintext to be encrypted.
type EncryptRequest struct {
	Key       string
	Plaintext []byte
	// AssociatedData is authenticated, not encrypted: decryption needs
	// the same.
	AssociatedData []byte
	// Context is required by derived keys (and refused by others).
	Context []byte
	// KeyVersion is the version to use; 0 means the latest.
	KeyVersion int
}

// DecryptRequest asks for a ciphertext to be decrypted.
type DecryptRequest struct {
	Key            string
	Ciphertext     string
	AssociatedData []byte
	Context        []byte
}

// RewrapRequest asks for a ciphertext to be encrypted again with a newer
// version.
type RewrapRequest struct {
	Key            string
	Ciphertext     string
	AssociatedData []byte
	Context        []byte
	// KeyVersion is the version to encrypt with; 0 means the latest.
	KeyVersion int
}

// Ciphertext is an encryption's result.
type Ciphertext struct {
	Ciphertext string `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
}

// Plaintext is a decryption's result.
type Plaintext struct {
	Plaintext  []byte `json:"plaintext"`
	KeyVersion int    `json:"key_version"`
}

// EncryptItem is one item of a batch encryption.
type EncryptItem struct {
	Plaintext, AssociatedData, Context []byte
}

// DecryptItem is one item of a batch decryption or rewrap.
type DecryptItem struct {
	Ciphertext              string
	AssociatedData, Context []byte
}

// EncryptBatchRequest is a batch of encryptions with one key.
type EncryptBatchRequest struct {
	Key string
	// KeyVersion is the version to encrypt with; 0 means the latest.
	KeyVersion int
	Items      []EncryptItem
}

// DecryptBatchRequest is a batch of decryptions with one key.
type DecryptBatchRequest struct {
	Key   string
	Items []DecryptItem
}

// RewrapBatchRequest is a batch of rewraps with one key.
type RewrapBatchRequest struct {
	Key string
	// KeyVersion is the version to encrypt with; 0 means the latest.
	KeyVersion int
	Items      []DecryptItem
}

// BatchResult is one item's outcome: a ciphertext or plaintext, or the
// item's error (naming "items[<i>].<field>"). One item failing does not
// fail the others.
type BatchResult struct {
	Ciphertext string
	Plaintext  []byte
	KeyVersion int
	Err        error
}

// Encrypt encrypts with a key's latest (or requested) version (encrypt on
// "key/<name>").
func (s *Service) Encrypt(ctx context.Context, c engine.Caller, mount string, r EncryptRequest) (Ciphertext, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpEncrypt)
	defer k.clear()
	if err != nil {
		return Ciphertext{}, err
	}
	n, err := k.encryptionVersion("key_version", r.KeyVersion)
	if err != nil {
		return Ciphertext{}, err
	}
	return k.encrypt("", n, EncryptItem{r.Plaintext, r.AssociatedData, r.Context})
}

// Decrypt decrypts with the version the ciphertext names, which must be
// at least min_decryption_version (decrypt on "key/<name>").
func (s *Service) Decrypt(ctx context.Context, c engine.Caller, mount string, r DecryptRequest) (Plaintext, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpDecrypt)
	defer k.clear()
	if err != nil {
		return Plaintext{}, err
	}
	return k.decrypt("", DecryptItem{r.Ciphertext, r.AssociatedData, r.Context})
}

// Rewrap decrypts and encrypts again with the latest (or requested)
// version, the plaintext never leaving the engine (rewrap on
// "key/<name>").
func (s *Service) Rewrap(ctx context.Context, c engine.Caller, mount string, r RewrapRequest) (Ciphertext, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpRewrap)
	defer k.clear()
	if err != nil {
		return Ciphertext{}, err
	}
	n, err := k.encryptionVersion("key_version", r.KeyVersion)
	if err != nil {
		return Ciphertext{}, err
	}
	return k.rewrap("", n, DecryptItem{r.Ciphertext, r.AssociatedData, r.Context})
}

// EncryptBatch encrypts every item (encrypt on "key/<name>", once).
func (s *Service) EncryptBatch(ctx context.Context, c engine.Caller, mount string, r EncryptBatchRequest) ([]BatchResult, error) {
	return s.batch(ctx, c, mount, r.Key, OpEncrypt, r.KeyVersion, len(r.Items), func(k *keyRecord, n, i int) BatchResult {
		return result(k.encrypt(itemField(i), n, r.Items[i]))
	})
}

// DecryptBatch decrypts every item (decrypt on "key/<name>", once).
func (s *Service) DecryptBatch(ctx context.Context, c engine.Caller, mount string, r DecryptBatchRequest) ([]BatchResult, error) {
	return s.batch(ctx, c, mount, r.Key, OpDecrypt, 0, len(r.Items), func(k *keyRecord, _, i int) BatchResult {
		p, err := k.decrypt(itemField(i), r.Items[i])
		return BatchResult{Plaintext: p.Plaintext, KeyVersion: p.KeyVersion, Err: err}
	})
}

// RewrapBatch rewraps every item (rewrap on "key/<name>", once).
func (s *Service) RewrapBatch(ctx context.Context, c engine.Caller, mount string, r RewrapBatchRequest) ([]BatchResult, error) {
	return s.batch(ctx, c, mount, r.Key, OpRewrap, r.KeyVersion, len(r.Items), func(k *keyRecord, n, i int) BatchResult {
		return result(k.rewrap(itemField(i), n, r.Items[i]))
	})
}

// batch opens the key once and runs do for each item with the version to
// encrypt with.
func (s *Service) batch(ctx context.Context, c engine.Caller, mount, key, op string, version, items int,
	do func(k *keyRecord, version, i int) BatchResult) ([]BatchResult, error) {
	_, k, err := s.open(ctx, c, mount, key, op)
	defer k.clear()
	if err != nil {
		return nil, err
	}
	if items == 0 || items > MaxBatch {
		return nil, apierr.InvalidField("items", "a batch holds 1..%d items, got %d", MaxBatch, items)
	}
	n, err := k.encryptionVersion("key_version", version)
	if err != nil {
		return nil, err
	}
	out := make([]BatchResult, items)
	for i := range out {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = do(k, n, i)
	}
	return out, nil
}

func itemField(i int) string { return fmt.Sprintf("items[%d].", i) }

func result(ct Ciphertext, err error) BatchResult {
	return BatchResult{Ciphertext: ct.Ciphertext, KeyVersion: ct.KeyVersion, Err: err}
}

// DataKeyRequest asks for a fresh data key wrapped by a transit key.
type DataKeyRequest struct {
	Key string
	// Bits is the data key's size: 128, 256 (default) or 512.
	Bits int
	// IncludePlaintext returns the data key itself too; otherwise only
	// the wrapped form, to be unwrapped with Decrypt where it is used.
	IncludePlaintext bool
	AssociatedData   []byte
	Context          []byte
}

// DataKey is a generated data key.
type DataKey struct {
	Ciphertext string `json:"ciphertext"`
	KeyVersion int    `json:"key_version"`
	// Plaintext is the data key, when asked for.
	Plaintext []byte `json:"plaintext,omitempty"`
}

// GenerateDataKey draws a random data key and encrypts it with the
// transit key's latest version (datakey on "key/<name>"), for envelope
// encryption.
func (s *Service) GenerateDataKey(ctx context.Context, c engine.Caller, mount string, r DataKeyRequest) (DataKey, error) {
	_, k, err := s.open(ctx, c, mount, r.Key, OpDataKey)
	defer k.clear()
	if err != nil {
		return DataKey{}, err
	}
	bits := r.Bits
	if bits == 0 {
		bits = 256
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return DataKey{}, apierr.InvalidField("bits", "must be 128, 256 or 512, got %d", r.Bits)
	}
	n, err := k.encryptionVersion("key_version", 0)
	if err != nil {
		return DataKey{}, err
	}
	dk := make([]byte, bits/8)
	_, _ = rand.Read(dk)
	ct, err := k.encrypt("", n, EncryptItem{dk, r.AssociatedData, r.Context})
	if err != nil {
		clear(dk)
		return DataKey{}, err
	}
	out := DataKey{Ciphertext: ct.Ciphertext, KeyVersion: ct.KeyVersion}
	if r.IncludePlaintext {
		out.Plaintext = dk
	} else {
		clear(dk)
	}
	return out, nil
}

// encryptionVersion resolves a requested version for encrypting,
// signing or HMAC: 0 is the latest; others must be within
// [max(min_encryption_version, min_decryption_version), latest].
func (k *keyRecord) encryptionVersion(field string, requested int) (int, error) {
	if requested == 0 {
		return k.latest(), nil
	}
	lowest := max(k.MinEncryptionVersion, k.MinDecryptionVersion)
	if requested < lowest || requested > k.latest() {
		return 0, apierr.InvalidField(field, "key %s encrypts with versions %d..%d, not %d", k.Name, lowest, k.latest(), requested)
	}
	return requested, nil
}

// decryptionVersion checks a version named by a ciphertext or signature.
func (k *keyRecord) decryptionVersion(field string, v int) error {
	if v > k.latest() {
		return apierr.InvalidField(field, "version %d does not exist in key %s (latest %d)", v, k.Name, k.latest())
	}
	if v < k.MinDecryptionVersion {
		return fieldError(engine.ErrPrecondition, field, "version %d is below key %s's min_decryption_version %d (rewrap before raising it)",
			v, k.Name, k.MinDecryptionVersion)
	}
	return nil
}

// aead is version n's cipher, with the key derived from context for a
// derived key.
func (k *keyRecord) aead(prefix string, n int, context []byte) (cipher.AEAD, error) {
	if !k.Type.Encrypts() {
		return nil, apierr.InvalidField("key", "key %s is of type %s, which does not encrypt", k.Name, k.Type)
	}
	key := k.version(n).Key
	switch {
	case k.Derived && len(context) == 0:
		return nil, apierr.InvalidField(prefix+"context", "required: key %s is derived", k.Name)
	case !k.Derived && len(context) > 0:
		return nil, apierr.InvalidField(prefix+"context", "key %s is not derived and takes no context", k.Name)
	case k.Derived:
		dk, err := hkdf.Key(sha256.New, key, nil, deriveInfo+string(context), symmetricKeySize)
		if err != nil {
			return nil, err
		}
		defer clear(dk)
		key = dk
	}
	if k.Type == ChaCha20Poly1305 {
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encrypt seals with version n: nonce || ciphertext || tag, the nonce
// random.
func (k *keyRecord) encrypt(prefix string, n int, it EncryptItem) (Ciphertext, error) {
	a, err := k.aead(prefix, n, it.Context)
	if err != nil {
		return Ciphertext{}, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(it.Plaintext)+a.Overhead())
	_, _ = rand.Read(nonce)
	return Ciphertext{Ciphertext: Format(n, a.Seal(nonce, nonce, it.Plaintext, it.AssociatedData)), KeyVersion: n}, nil
}

func (k *keyRecord) decrypt(prefix string, it DecryptItem) (Plaintext, error) {
	field := prefix + "ciphertext"
	n, raw, err := Parse(field, it.Ciphertext)
	if err != nil {
		return Plaintext{}, err
	}
	if err := k.decryptionVersion(field, n); err != nil {
		return Plaintext{}, err
	}
	a, err := k.aead(prefix, n, it.Context)
	if err != nil {
		return Plaintext{}, err
	}
	if len(raw) < a.NonceSize()+a.Overhead() {
		return Plaintext{}, apierr.InvalidField(field, "too short (%d bytes)", len(raw))
	}
	pt, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], it.AssociatedData)
	if err != nil {
		return Plaintext{}, apierr.InvalidField(field, "does not decrypt: altered, or another key, associated data or context")
	}
	if pt == nil {
		pt = []byte{}
	}
	return Plaintext{Plaintext: pt, KeyVersion: n}, nil
}

func (k *keyRecord) rewrap(prefix string, n int, it DecryptItem) (Ciphertext, error) {
	p, err := k.decrypt(prefix, it)
	if err != nil {
		return Ciphertext{}, err
	}
	defer clear(p.Plaintext)
	return k.encrypt(prefix, n, EncryptItem{p.Plaintext, it.AssociatedData, it.Context})
}
