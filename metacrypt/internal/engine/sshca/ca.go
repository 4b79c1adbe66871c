package sshca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// The barrier kinds and keys of an SSH CA mount.
const (
	kindCA = "ssh"
	// keyCA is the CA's private key (never leaves the barrier).
	keyCA = "ca"
	// keyCAPublic is its public description, read by the public getters
	// without decrypting the key.
	keyCAPublic = "ca-public"
	// keySerial is the next serial number.
	keySerial = "serial"
	// keyKRL is the revocation state with its encoded KRL.
	keyKRL = "krl"
	// kindProfile holds one signing profile per key (its name).
	kindProfile = "ssh-profile"
	// kindCert holds one issued certificate's record per key (its serial,
	// zero-padded so the keys sort numerically).
	kindCert = "ssh-cert"
)

// CARequest asks for the mount's CA key.
type CARequest struct {
	// KeyType is ed25519 (default), ec-p256, ec-p384, rsa-3072 or
	// rsa-4096.
	KeyType string `json:"key_type"`
}

// CAInfo is the CA's public description.
type CAInfo struct {
	KeyType pki.KeyType `json:"key_type"`
	// PublicKey is the CA key in authorized_keys form, a line ending in a
	// newline: a TrustedUserCAKeys file, or the key part of a known_hosts
	// "@cert-authority <hosts> <key>" line.
	PublicKey string `json:"public_key"`
	// Fingerprint is OpenSSH's SHA256 fingerprint of the key.
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

// caRecord is the CA key as stored in the barrier.
type caRecord struct {
	KeyType pki.KeyType `json:"key_type"`
	// Key is the private key, PKCS#8 DER.
	Key []byte `json:"key"`
}

// GenerateCA creates the mount's CA key (manage on "ca"). A mount has
// one CA key; a second is a conflict. The first, empty KRL is written
// with it, so sshd's RevokedKeys can point at it at once.
func (s *Service) GenerateCA(ctx context.Context, c engine.Caller, mount string, r CARequest) (CAInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return CAInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, resourceCA); err != nil {
		return CAInfo{}, err
	}
	kt := pki.Ed25519
	if r.KeyType != "" {
		if kt, err = pki.ParseCAKeyType("key_type", r.KeyType); err != nil {
			return CAInfo{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch _, err := m.Storage.Get(ctx, kindCA, keyCAPublic); {
	case err == nil:
		return CAInfo{}, wrapf(engine.ErrConflict, "mount %s has a CA key already", m.Name)
	case !errors.Is(err, engine.ErrNotFound):
		return CAInfo{}, err
	}
	key, err := kt.Generate()
	if err != nil {
		return CAInfo{}, err
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return CAInfo{}, fmt.Errorf("CA public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return CAInfo{}, fmt.Errorf("marshal CA key: %w", err)
	}
	now := s.now()
	info := CAInfo{KeyType: kt, PublicKey: string(ssh.MarshalAuthorizedKey(pub)), Fingerprint: ssh.FingerprintSHA256(pub), CreatedAt: now}
	// The KRL first and the key last: a CA exists once its public record
	// does, and then everything it needs exists.
	st := revocations{Version: 1}
	if err := s.putRevocations(ctx, m, pub, &st); err != nil {
		return CAInfo{}, err
	}
	if err := putJSON(ctx, m.Storage, kindCA, keySerial, uint64(1)); err != nil {
		return CAInfo{}, err
	}
	rec, err := json.Marshal(caRecord{KeyType: kt, Key: der})
	clear(der)
	if err != nil {
		return CAInfo{}, err
	}
	err = m.Storage.Put(ctx, kindCA, keyCA, rec)
	clear(rec)
	if err != nil {
		return CAInfo{}, err
	}
	if err := putJSON(ctx, m.Storage, kindCA, keyCAPublic, info); err != nil {
		return CAInfo{}, err
	}
	s.publish(ctx, m, info, &st)
	s.d.Logger.Info("ssh ca generated", "mount", m.Name, "key_type", kt, "fingerprint", info.Fingerprint, "by", c.Username)
	return info, nil
}

// GetCA returns the CA's public key and description. It is public (no
// caller, no ACL): the key is what every sshd and client is configured
// with. It needs the barrier unsealed; Public serves the published copy
// while sealed.
func (s *Service) GetCA(ctx context.Context, mount string) (CAInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return CAInfo{}, err
	}
	return loadCAInfo(ctx, m)
}

func loadCAInfo(ctx context.Context, m engine.Mount) (CAInfo, error) {
	var info CAInfo
	if err := getJSON(ctx, m.Storage, kindCA, keyCAPublic, &info); err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return CAInfo{}, noCA(m)
		}
		return CAInfo{}, err
	}
	return info, nil
}

func noCA(m engine.Mount) error {
	return wrapf(engine.ErrPrecondition, "mount %s has no CA key yet (generate-ca)", m.Name)
}

// loadSigner reads the CA key and returns it as an SSH signer, checked
// against the public record. The caller drops it after the signature.
func loadSigner(ctx context.Context, m engine.Mount) (ssh.Signer, error) {
	info, err := loadCAInfo(ctx, m)
	if err != nil {
		return nil, err
	}
	b, err := m.Storage.Get(ctx, kindCA, keyCA)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var rec caRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("stored SSH CA key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(rec.Key)
	clear(rec.Key)
	if err != nil {
		return nil, fmt.Errorf("stored SSH CA key: %w", err)
	}
	cs, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("stored SSH CA key cannot sign")
	}
	signer, err := ssh.NewSignerFromSigner(cs)
	if err != nil {
		return nil, fmt.Errorf("stored SSH CA key: %w", err)
	}
	if !bytes.Equal(ssh.MarshalAuthorizedKey(signer.PublicKey()), []byte(info.PublicKey)) {
		return nil, errors.New("stored SSH CA key does not match its public record")
	}
	return signer, nil
}

// caPublicKey parses the CA's public key from its record.
func caPublicKey(info CAInfo) (ssh.PublicKey, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(info.PublicKey)))
	if err != nil {
		return nil, fmt.Errorf("stored SSH CA public key: %w", err)
	}
	return pub, nil
}

func putJSON(ctx context.Context, st engine.Storage, kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.Put(ctx, kind, key, b)
}

func getJSON(ctx context.Context, st engine.Storage, kind, key string, v any) error {
	b, err := st.Get(ctx, kind, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("stored %s/%s: %w", kind, key, err)
	}
	return nil
}
