package u2u

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// The barrier kinds of a u2u mount, keyed by username: the private keys
// (read only to send or open as their owner) and the public keys (read to
// send to, verify the sender of and list).
const (
	kindPrivate = "u2u-private"
	kindPublic  = "u2u-public"
)

// UserKeys are a user's public keys, every version.
type UserKeys struct {
	Username      string       `json:"username"`
	LatestVersion int          `json:"latest_version"`
	Versions      []KeyVersion `json:"versions"`
}

// KeyVersion is one version of a user's X25519 public key.
type KeyVersion struct {
	Version   int       `json:"version"`
	PublicKey []byte    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
}

// publicRecord is a user's public keys as stored, with the MCIAS subject
// the keys belong to.
type publicRecord struct {
	UserKeys
	Subject string `json:"subject"`
}

// privateRecord is a user's private keys: Keys[i] is version i+1.
type privateRecord struct {
	Keys [][]byte `json:"keys"`
}

func (p *privateRecord) clear() {
	if p == nil {
		return
	}
	for _, k := range p.Keys {
		clear(k)
	}
}

// CreateKey creates the caller's key pair (manage on "user/<self>"); a
// second is a conflict. Sending creates it too, on first use.
func (s *Service) CreateKey(ctx context.Context, c engine.Caller, mount string) (UserKeys, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return UserKeys{}, err
	}
	res, err := self(c)
	if err != nil {
		return UserKeys{}, err
	}
	if err := s.authorize(ctx, c, m, OpManage, res); err != nil {
		return UserKeys{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch _, err := loadPublic(ctx, m, c.Username); {
	case err == nil:
		return UserKeys{}, wrapf(engine.ErrConflict, "%s has a key already (rotate it instead)", c.Username)
	case !errors.Is(err, engine.ErrNotFound):
		return UserKeys{}, err
	}
	return s.addVersion(ctx, m, c, &publicRecord{UserKeys: UserKeys{Username: c.Username}, Subject: c.Subject}, &privateRecord{})
}

// RotateKey adds a new version to the caller's key pair (manage on
// "user/<self>"): messages are sent to it from now on, and messages to
// the older versions still open.
func (s *Service) RotateKey(ctx context.Context, c engine.Caller, mount string) (UserKeys, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return UserKeys{}, err
	}
	res, err := self(c)
	if err != nil {
		return UserKeys{}, err
	}
	if err := s.authorize(ctx, c, m, OpManage, res); err != nil {
		return UserKeys{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pub, err := loadPublic(ctx, m, c.Username)
	if err != nil {
		return UserKeys{}, err
	}
	if err := pub.owner(c); err != nil {
		return UserKeys{}, err
	}
	priv, err := loadPrivate(ctx, m, pub)
	defer priv.clear()
	if err != nil {
		return UserKeys{}, err
	}
	return s.addVersion(ctx, m, c, pub, priv)
}

// ensureKey returns the caller's public keys, creating the pair on first
// use.
func (s *Service) ensureKey(ctx context.Context, m engine.Mount, c engine.Caller) (*publicRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pub, err := loadPublic(ctx, m, c.Username)
	if err == nil {
		return pub, pub.owner(c)
	}
	if !errors.Is(err, engine.ErrNotFound) {
		return nil, err
	}
	pub = &publicRecord{UserKeys: UserKeys{Username: c.Username}, Subject: c.Subject}
	if _, err := s.addVersion(ctx, m, c, pub, &privateRecord{}); err != nil {
		return nil, err
	}
	return pub, nil
}

// addVersion draws a key pair as the next version and stores both
// records: the private one first, so a public key never exists without
// its private key. The caller holds s.mu.
func (s *Service) addVersion(ctx context.Context, m engine.Mount, c engine.Caller, pub *publicRecord, priv *privateRecord) (UserKeys, error) {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return UserKeys{}, err
	}
	priv.Keys = append(priv.Keys, key.Bytes())
	v := len(priv.Keys)
	if v != len(pub.Versions)+1 {
		return UserKeys{}, fmt.Errorf("u2u keys of %s: %d private and %d public versions", pub.Username, v-1, len(pub.Versions))
	}
	pub.Versions = append(pub.Versions, KeyVersion{Version: v, PublicKey: key.PublicKey().Bytes(), CreatedAt: s.now()})
	pub.LatestVersion = v
	b, err := json.Marshal(priv)
	if err != nil {
		return UserKeys{}, err
	}
	defer clear(b)
	if err := m.Storage.Put(ctx, kindPrivate, pub.Username, b); err != nil {
		return UserKeys{}, err
	}
	b2, err := json.Marshal(pub)
	if err != nil {
		return UserKeys{}, err
	}
	if err := m.Storage.Put(ctx, kindPublic, pub.Username, b2); err != nil {
		return UserKeys{}, err
	}
	s.d.Logger.Info("u2u key version added", "mount", m.Name, "user", pub.Username, "version", v, "by", c.Username)
	return pub.UserKeys, nil
}

// GetKey returns a user's public keys (read on "user/<name>").
func (s *Service) GetKey(ctx context.Context, c engine.Caller, mount, username string) (UserKeys, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return UserKeys{}, err
	}
	if err := validateUsername("username", username); err != nil {
		return UserKeys{}, err
	}
	if err := s.authorize(ctx, c, m, OpRead, resourceUser(username)); err != nil {
		return UserKeys{}, err
	}
	pub, err := loadPublic(ctx, m, username)
	if err != nil {
		return UserKeys{}, err
	}
	return pub.UserKeys, nil
}

// ListKeys returns every user's public keys, by username (read on
// "users").
func (s *Service) ListKeys(ctx context.Context, c engine.Caller, mount string) ([]UserKeys, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, m, OpRead, resourceUsers); err != nil {
		return nil, err
	}
	names, err := m.Storage.List(ctx, kindPublic)
	if err != nil {
		return nil, err
	}
	out := make([]UserKeys, 0, len(names))
	for _, n := range names {
		pub, err := loadPublic(ctx, m, n)
		if err != nil {
			return nil, err
		}
		out = append(out, pub.UserKeys)
	}
	return out, nil
}

// owner refuses a caller whose MCIAS subject is not the one the keys were
// made for: a username given to another account does not inherit the
// messages sent to its former holder.
func (p *publicRecord) owner(c engine.Caller) error {
	if p.Subject != "" && c.Subject != "" && p.Subject != c.Subject {
		return wrapf(engine.ErrDenied, "the u2u keys of %s belong to another MCIAS account", p.Username)
	}
	return nil
}

// public is version v's public key.
func (p *publicRecord) public(v uint32) (*ecdh.PublicKey, error) {
	if v == 0 || int(v) > len(p.Versions) {
		return nil, wrapf(engine.ErrNotFound, "key version %d of %s", v, p.Username)
	}
	return ecdh.X25519().NewPublicKey(p.Versions[v-1].PublicKey)
}

func loadPublic(ctx context.Context, m engine.Mount, username string) (*publicRecord, error) {
	b, err := m.Storage.Get(ctx, kindPublic, username)
	if err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return nil, wrapf(engine.ErrNotFound, "%s has no u2u key yet", username)
		}
		return nil, err
	}
	var p publicRecord
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("stored u2u public keys of %s: %w", username, err)
	}
	if len(p.Versions) == 0 {
		return nil, fmt.Errorf("stored u2u public keys of %s: no version", username)
	}
	return &p, nil
}

func loadPrivate(ctx context.Context, m engine.Mount, pub *publicRecord) (*privateRecord, error) {
	b, err := m.Storage.Get(ctx, kindPrivate, pub.Username)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var p privateRecord
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("stored u2u keys of %s: %w", pub.Username, err)
	}
	if len(p.Keys) < len(pub.Versions) {
		p.clear()
		return nil, fmt.Errorf("stored u2u keys of %s: %d private and %d public versions", pub.Username, len(p.Keys), len(pub.Versions))
	}
	// A rotation interrupted between its two writes left a private key
	// whose public key was never published: drop it.
	for _, k := range p.Keys[len(pub.Versions):] {
		clear(k)
	}
	p.Keys = p.Keys[:len(pub.Versions)]
	return &p, nil
}

// private is version v's private key, checked against its public key.
func (p *privateRecord) private(pub *publicRecord, v uint32) (*ecdh.PrivateKey, error) {
	if v == 0 || int(v) > len(p.Keys) {
		return nil, wrapf(engine.ErrNotFound, "key version %d of %s", v, pub.Username)
	}
	k, err := ecdh.X25519().NewPrivateKey(p.Keys[v-1])
	if err != nil {
		return nil, fmt.Errorf("stored u2u key %s v%d: %w", pub.Username, v, err)
	}
	if string(k.PublicKey().Bytes()) != string(pub.Versions[v-1].PublicKey) {
		return nil, fmt.Errorf("stored u2u key %s v%d does not match its public key", pub.Username, v)
	}
	return k, nil
}
