package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// SSHPublic is the public copy of an SSH mount's CA key and current KRL,
// written by the SSH CA engine whenever either changes; the barrier holds
// the authoritative copy.
type SSHPublic struct {
	KeyType string
	// PublicKey is the CA key's authorized_keys line.
	PublicKey   string
	Fingerprint string
	CreatedAt   time.Time
	KRLVersion  uint64
	// KRLGeneratedAt is when the KRL was encoded.
	KRLGeneratedAt time.Time
	KRL            []byte
}

// PutSSHPublic stores (replaces) a mount's public SSH material. The
// engine writes it under its lock, in the barrier's order, and rewrites
// a copy that differs from the barrier's, so the store does not second-
// guess it (a tampered row with a higher KRL version must be replaceable).
func (s *Store) PutSSHPublic(ctx context.Context, mountID string, p SSHPublic) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO ssh_public (mount_id, key_type, public_key, fingerprint, created_at, krl_version, krl_generated_at, krl)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (mount_id) DO UPDATE SET key_type = excluded.key_type, public_key = excluded.public_key,
			fingerprint = excluded.fingerprint, created_at = excluded.created_at, krl_version = excluded.krl_version,
			krl_generated_at = excluded.krl_generated_at, krl = excluded.krl`,
		mountID, p.KeyType, p.PublicKey, p.Fingerprint, db.Time(&p.CreatedAt), int64(p.KRLVersion), db.Time(&p.KRLGeneratedAt), p.KRL) //nolint:gosec // KRL versions count revocations
	if err != nil {
		return fmt.Errorf("write SSH public material: %w", err)
	}
	return nil
}

// SSHPublic reads a mount's public SSH material; engine.ErrNotFound if the
// mount has no CA key yet.
func (s *Store) SSHPublic(ctx context.Context, mountID string) (SSHPublic, error) {
	var p SSHPublic
	var version int64
	err := s.db.QueryRowContext(ctx, `SELECT key_type, public_key, fingerprint, created_at, krl_version, krl_generated_at, krl
		FROM ssh_public WHERE mount_id = ?`, mountID).
		Scan(&p.KeyType, &p.PublicKey, &p.Fingerprint, db.Time(&p.CreatedAt), &version, db.Time(&p.KRLGeneratedAt), &p.KRL)
	if errors.Is(err, sql.ErrNoRows) {
		return SSHPublic{}, fmt.Errorf("%w: no SSH CA key", engine.ErrNotFound)
	}
	if err != nil {
		return SSHPublic{}, fmt.Errorf("read SSH public material: %w", err)
	}
	p.KRLVersion = uint64(version) //nolint:gosec // written from a uint64 below 2^63
	return p, nil
}
