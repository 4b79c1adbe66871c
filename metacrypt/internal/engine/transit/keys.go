package transit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// KeyType is a transit key's algorithm.
type KeyType string

// The key types.
const (
	AES256GCM96      KeyType = "aes256-gcm96"
	ChaCha20Poly1305 KeyType = "chacha20-poly1305"
	Ed25519          KeyType = "ed25519"
	ECDSAP256        KeyType = "ecdsa-p256"
	HMAC             KeyType = "hmac"
)

// KeyTypes lists the key types.
var KeyTypes = []KeyType{AES256GCM96, ChaCha20Poly1305, Ed25519, ECDSAP256, HMAC}

// Encrypts reports whether the type encrypts (and derives, rewraps and
// makes data keys).
func (t KeyType) Encrypts() bool { return t == AES256GCM96 || t == ChaCha20Poly1305 }

// Signs reports whether the type signs.
func (t KeyType) Signs() bool { return t == Ed25519 || t == ECDSAP256 }

// HMACs reports whether the type has HMAC material: the hmac type's key
// itself, and a separate HMAC key per version of the symmetric types.
func (t KeyType) HMACs() bool { return t == HMAC || t.Encrypts() }

// symmetricKeySize is the size of every symmetric key and HMAC key.
const symmetricKeySize = 32

// kindKey holds one key record per key (its name).
const kindKey = "transit-key"

// keyRecord is a key as stored in the barrier: its settings and every
// version's material.
type keyRecord struct {
	Name                 string    `json:"name"`
	Type                 KeyType   `json:"type"`
	Derived              bool      `json:"derived"`
	Exportable           bool      `json:"exportable"`
	DeletionAllowed      bool      `json:"deletion_allowed"`
	MinDecryptionVersion int       `json:"min_decryption_version"`
	MinEncryptionVersion int       `json:"min_encryption_version"`
	CreatedAt            time.Time `json:"created_at"`
	// Versions[i] is version i+1.
	Versions []keyVersion `json:"versions"`
}

// keyVersion is one version's material: the key (32 bytes for the
// symmetric types, the Ed25519 seed, or the ECDSA key as PKCS#8 DER) and,
// for the encryption types, a separate HMAC key.
type keyVersion struct {
	Key       []byte    `json:"key"`
	HMACKey   []byte    `json:"hmac_key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (k *keyRecord) latest() int { return len(k.Versions) }

// clear zeroes every version's material.
func (k *keyRecord) clear() {
	if k == nil {
		return
	}
	for _, v := range k.Versions {
		clear(v.Key)
		clear(v.HMACKey)
	}
}

// version is the material of version n (1-based), which must exist.
func (k *keyRecord) version(n int) keyVersion { return k.Versions[n-1] }

// newVersion draws a version's material.
func newVersion(t KeyType, now time.Time) (keyVersion, error) {
	v := keyVersion{CreatedAt: now}
	switch t {
	case AES256GCM96, ChaCha20Poly1305, HMAC:
		v.Key = make([]byte, symmetricKeySize)
		_, _ = rand.Read(v.Key)
		if t != HMAC {
			v.HMACKey = make([]byte, symmetricKeySize)
			_, _ = rand.Read(v.HMACKey)
		}
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return v, err
		}
		v.Key = priv.Seed()
	case ECDSAP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return v, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return v, err
		}
		v.Key = der
	default:
		return v, fmt.Errorf("unknown key type %q", t)
	}
	return v, nil
}

// signer is a signing version's private key.
func (v keyVersion) signer(t KeyType) (crypto.Signer, error) {
	switch t {
	case Ed25519:
		return ed25519.NewKeyFromSeed(v.Key), nil
	case ECDSAP256:
		k, err := x509.ParsePKCS8PrivateKey(v.Key)
		if err != nil {
			return nil, fmt.Errorf("stored ECDSA key: %w", err)
		}
		s, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errors.New("stored ECDSA key is not ECDSA")
		}
		return s, nil
	}
	return nil, fmt.Errorf("key type %s does not sign", t)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func validateName(field, name string) error {
	if !nameRE.MatchString(name) {
		return apierr.InvalidField(field, "%q is not a valid key name (letters, digits and ._-, 1-128 characters, starting with a letter or digit)", name)
	}
	return nil
}

// CreateKeyRequest asks for a new key.
type CreateKeyRequest struct {
	Name string
	// Type is one of KeyTypes; empty means aes256-gcm96.
	Type string
	// Derived makes encryption use a key derived from each request's
	// context (encryption types only).
	Derived bool
	// Exportable allows ExportKey, for ever; it cannot be set later.
	Exportable bool
}

// KeyConfigRequest changes a key's settings; nil fields are unchanged.
type KeyConfigRequest struct {
	Name string
	// MinDecryptionVersion is the oldest version that still decrypts,
	// verifies and rewraps (1..latest).
	MinDecryptionVersion *int
	// MinEncryptionVersion is the oldest version a request may ask to
	// encrypt, sign or HMAC with (0: any from min_decryption_version).
	MinEncryptionVersion *int
	DeletionAllowed      *bool
}

// KeyInfo describes a key without its material.
type KeyInfo struct {
	Name                 string        `json:"name"`
	Type                 KeyType       `json:"type"`
	Derived              bool          `json:"derived"`
	Exportable           bool          `json:"exportable"`
	DeletionAllowed      bool          `json:"deletion_allowed"`
	LatestVersion        int           `json:"latest_version"`
	MinDecryptionVersion int           `json:"min_decryption_version"`
	MinEncryptionVersion int           `json:"min_encryption_version"`
	CreatedAt            time.Time     `json:"created_at"`
	Versions             []VersionInfo `json:"versions"`
}

// VersionInfo describes one version: when it was made and, for the
// signing types, its public key (PKIX, PEM).
type VersionInfo struct {
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	PublicKeyPEM string    `json:"public_key_pem,omitempty"`
}

func (k *keyRecord) info() (KeyInfo, error) {
	out := KeyInfo{
		Name: k.Name, Type: k.Type, Derived: k.Derived, Exportable: k.Exportable, DeletionAllowed: k.DeletionAllowed,
		LatestVersion: k.latest(), MinDecryptionVersion: k.MinDecryptionVersion, MinEncryptionVersion: k.MinEncryptionVersion,
		CreatedAt: k.CreatedAt,
	}
	for i, v := range k.Versions {
		vi := VersionInfo{Version: i + 1, CreatedAt: v.CreatedAt}
		if k.Type.Signs() {
			s, err := v.signer(k.Type)
			if err != nil {
				return KeyInfo{}, err
			}
			der, err := x509.MarshalPKIXPublicKey(s.Public())
			if err != nil {
				return KeyInfo{}, err
			}
			vi.PublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		}
		out.Versions = append(out.Versions, vi)
	}
	return out, nil
}

// CreateKey creates a key with its first version (manage on
// "key/<name>").
func (s *Service) CreateKey(ctx context.Context, c engine.Caller, mount string, r CreateKeyRequest) (KeyInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := validateName("name", r.Name); err != nil {
		return KeyInfo{}, err
	}
	if err := s.d.Authz.Allow(ctx, c, m.Name, OpManage, resourceKey(r.Name)); err != nil {
		return KeyInfo{}, err
	}
	t := AES256GCM96
	if r.Type != "" {
		t = KeyType(r.Type)
		if !slices.Contains(KeyTypes, t) {
			return KeyInfo{}, apierr.InvalidField("type", "unknown key type %q (%s)", r.Type, joinTypes())
		}
	}
	if r.Derived && !t.Encrypts() {
		return KeyInfo{}, apierr.InvalidField("derived", "only encryption keys (%s, %s) are derived", AES256GCM96, ChaCha20Poly1305)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch _, err := m.Storage.Get(ctx, kindKey, r.Name); {
	case err == nil:
		return KeyInfo{}, wrapf(engine.ErrConflict, "key %s exists", r.Name)
	case !errors.Is(err, engine.ErrNotFound):
		return KeyInfo{}, err
	}
	now := s.now()
	v, err := newVersion(t, now)
	if err != nil {
		return KeyInfo{}, err
	}
	k := &keyRecord{Name: r.Name, Type: t, Derived: r.Derived, Exportable: r.Exportable, MinDecryptionVersion: 1, CreatedAt: now, Versions: []keyVersion{v}}
	defer k.clear()
	if err := putKey(ctx, m, k); err != nil {
		return KeyInfo{}, err
	}
	s.d.Logger.Info("transit key created", "mount", m.Name, "key", r.Name, "type", t, "derived", r.Derived, "exportable", r.Exportable, "by", c.Username)
	return k.info()
}

func joinTypes() string {
	var s []string
	for _, t := range KeyTypes {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}

// GetKey describes a key (read on "key/<name>").
func (s *Service) GetKey(ctx context.Context, c engine.Caller, mount, name string) (KeyInfo, error) {
	_, k, err := s.open(ctx, c, mount, name, OpRead)
	defer k.clear()
	if err != nil {
		return KeyInfo{}, err
	}
	return k.info()
}

// ListKeys lists the keys' names (read on "keys").
func (s *Service) ListKeys(ctx context.Context, c engine.Caller, mount string) ([]string, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return nil, err
	}
	if err := s.d.Authz.Allow(ctx, c, m.Name, OpRead, resourceKeys); err != nil {
		return nil, err
	}
	return m.Storage.List(ctx, kindKey)
}

// RotateKey adds a new latest version (manage on "key/<name>"); older
// versions keep decrypting down to min_decryption_version.
func (s *Service) RotateKey(ctx context.Context, c engine.Caller, mount, name string) (KeyInfo, error) {
	return s.change(ctx, c, mount, name, func(k *keyRecord) error {
		v, err := newVersion(k.Type, s.now())
		if err != nil {
			return err
		}
		k.Versions = append(k.Versions, v)
		return nil
	})
}

// UpdateKeyConfig changes the minimum versions and deletion_allowed
// (manage on "key/<name>").
func (s *Service) UpdateKeyConfig(ctx context.Context, c engine.Caller, mount string, r KeyConfigRequest) (KeyInfo, error) {
	return s.change(ctx, c, mount, r.Name, func(k *keyRecord) error {
		minDec, minEnc := k.MinDecryptionVersion, k.MinEncryptionVersion
		if r.MinDecryptionVersion != nil {
			minDec = *r.MinDecryptionVersion
			if minDec < 1 || minDec > k.latest() {
				return apierr.InvalidField("min_decryption_version", "must be 1..%d (the latest version), got %d", k.latest(), minDec)
			}
		}
		if r.MinEncryptionVersion != nil {
			minEnc = *r.MinEncryptionVersion
			if minEnc < 0 || minEnc > k.latest() {
				return apierr.InvalidField("min_encryption_version", "must be 0..%d (the latest version), got %d", k.latest(), minEnc)
			}
		}
		if minEnc != 0 && minEnc < minDec {
			field := "min_encryption_version"
			if r.MinEncryptionVersion == nil {
				field = "min_decryption_version"
			}
			return apierr.InvalidField(field, "min_encryption_version %d is below min_decryption_version %d", minEnc, minDec)
		}
		k.MinDecryptionVersion, k.MinEncryptionVersion = minDec, minEnc
		if r.DeletionAllowed != nil {
			k.DeletionAllowed = *r.DeletionAllowed
		}
		return nil
	})
}

// change applies f to a key under the lock and stores it; f's error
// leaves the key unchanged.
func (s *Service) change(ctx context.Context, c engine.Caller, mount, name string, f func(k *keyRecord) error) (KeyInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := validateName("name", name); err != nil {
		return KeyInfo{}, err
	}
	if err := s.d.Authz.Allow(ctx, c, m.Name, OpManage, resourceKey(name)); err != nil {
		return KeyInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := loadKey(ctx, m, name)
	defer k.clear()
	if err != nil {
		return KeyInfo{}, err
	}
	if err := f(k); err != nil {
		return KeyInfo{}, err
	}
	if err := putKey(ctx, m, k); err != nil {
		return KeyInfo{}, err
	}
	s.d.Logger.Info("transit key changed", "mount", m.Name, "key", name, "latest_version", k.latest(),
		"min_decryption_version", k.MinDecryptionVersion, "by", c.Username)
	return k.info()
}

// DeleteKey deletes a key and every version (manage on "key/<name>"); the
// key's deletion_allowed must have been set first.
func (s *Service) DeleteKey(ctx context.Context, c engine.Caller, mount, name string) error {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return err
	}
	if err := validateName("name", name); err != nil {
		return err
	}
	if err := s.d.Authz.Allow(ctx, c, m.Name, OpManage, resourceKey(name)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := loadKey(ctx, m, name)
	defer k.clear()
	if err != nil {
		return err
	}
	if !k.DeletionAllowed {
		return wrapf(engine.ErrPrecondition, "key %s does not allow deletion (set deletion_allowed first)", name)
	}
	if err := m.Storage.Delete(ctx, kindKey, name); err != nil {
		return err
	}
	s.d.Logger.Info("transit key deleted", "mount", m.Name, "key", name, "by", c.Username)
	return nil
}

// ExportedKey is an exportable key's material.
type ExportedKey struct {
	Name     string            `json:"name"`
	Type     KeyType           `json:"type"`
	Versions []ExportedVersion `json:"versions"`
}

// ExportedVersion is one version's material: the raw 32-byte key for the
// symmetric types (and its HMAC key), PKCS#8 DER for the signing types.
type ExportedVersion struct {
	Version int    `json:"version"`
	Key     []byte `json:"key"`
	HMACKey []byte `json:"hmac_key,omitempty"`
}

// ExportKey returns a key's versions (export on "key/<name>"): one
// version, or every version from min_decryption_version when version is
// 0. Only keys created exportable can be exported.
func (s *Service) ExportKey(ctx context.Context, c engine.Caller, mount, name string, version int) (ExportedKey, error) {
	m, k, err := s.open(ctx, c, mount, name, OpExport)
	defer k.clear()
	if err != nil {
		return ExportedKey{}, err
	}
	if !k.Exportable {
		return ExportedKey{}, wrapf(engine.ErrPrecondition, "key %s is not exportable (only keys created exportable are)", name)
	}
	from, to := k.MinDecryptionVersion, k.latest()
	if version != 0 {
		if version < k.MinDecryptionVersion || version > k.latest() {
			return ExportedKey{}, apierr.InvalidField("version", "must be %d..%d, got %d", k.MinDecryptionVersion, k.latest(), version)
		}
		from, to = version, version
	}
	out := ExportedKey{Name: k.Name, Type: k.Type}
	for n := from; n <= to; n++ {
		v := k.version(n)
		out.Versions = append(out.Versions, ExportedVersion{Version: n, Key: slices.Clone(v.Key), HMACKey: slices.Clone(v.HMACKey)})
	}
	s.d.Logger.Info("transit key exported", "mount", m.Name, "key", name, "versions", len(out.Versions), "by", c.Username)
	return out, nil
}

func loadKey(ctx context.Context, m engine.Mount, name string) (*keyRecord, error) {
	b, err := m.Storage.Get(ctx, kindKey, name)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return nil, wrapf(engine.ErrNotFound, "key %s", name)
		}
		return nil, err
	}
	defer clear(b)
	var k keyRecord
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("stored transit key %s: %w", name, err)
	}
	if len(k.Versions) == 0 || k.MinDecryptionVersion < 1 {
		return nil, fmt.Errorf("stored transit key %s has no usable version", name)
	}
	return &k, nil
}

func putKey(ctx context.Context, m engine.Mount, k *keyRecord) error {
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	defer clear(b)
	return m.Storage.Put(ctx, kindKey, k.Name, b)
}
