package sshca

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// The public material of a mount — the CA public key and the KRL — is
// authoritative in the barrier, and copied to the Publisher (the store's
// clear ssh_public table) whenever it changes (GenerateCA, Revoke), so
// the public endpoints answer while sealed, as the CA engine's CRLs do.
// A copy that failed to be written is repaired by Periodic.

// Publisher keeps the public copy of each mount's CA key and KRL outside
// the barrier (store.Store).
type Publisher interface {
	PutSSHPublic(ctx context.Context, mountID string, p store.SSHPublic) error
	SSHPublic(ctx context.Context, mountID string) (store.SSHPublic, error)
}

// Public is the mount's CA public key and KRL as last published: no
// caller, no ACL, and no barrier, so it answers while sealed.
func (s *Service) Public(ctx context.Context, mount string) (store.SSHPublic, error) {
	m, err := s.d.Mounts.Resolve(ctx, mount)
	if err != nil {
		return store.SSHPublic{}, err
	}
	if m.Type != Type {
		return store.SSHPublic{}, wrapf(engine.ErrPrecondition, "mount %s is a %s mount, not an SSH CA", mount, m.Type)
	}
	if s.d.Public == nil {
		return store.SSHPublic{}, wrapf(engine.ErrNotFound, "mount %s publishes no SSH material", m.Name)
	}
	p, err := s.d.Public.SSHPublic(ctx, m.ID)
	if errors.Is(err, engine.ErrNotFound) {
		return store.SSHPublic{}, wrapf(engine.ErrNotFound, "mount %s has no SSH CA key yet", m.Name)
	}
	return p, err
}

// publish writes the public copy of the CA and its KRL state. A failure
// is logged, not returned: the change it follows stands in the barrier,
// and Periodic writes the copy again.
func (s *Service) publish(ctx context.Context, m engine.Mount, info CAInfo, st *revocations) {
	if s.d.Public == nil {
		return
	}
	if err := s.d.Public.PutSSHPublic(ctx, m.ID, publicOf(info, st)); err != nil {
		s.d.Logger.Error("ssh public material not published; the periodic refresh retries", "mount", m.Name, "krl_version", st.Version, "error", err)
	}
}

func publicOf(info CAInfo, st *revocations) store.SSHPublic {
	return store.SSHPublic{
		KeyType: string(info.KeyType), PublicKey: info.PublicKey, Fingerprint: info.Fingerprint, CreatedAt: info.CreatedAt,
		KRLVersion: st.Version, KRLGeneratedAt: st.GeneratedAt, KRL: st.KRL,
	}
}

// Periodic implements engine.Engine: it publishes again the public
// material of every mount whose published copy is missing or differs
// from the barrier's: a write that failed after a revocation, a mount
// whose CA was made before publication existed, or a row altered in the
// database (the copy is in the clear, so this bounds such tampering to
// one refresh interval while unsealed; hosts should still pin the CA key
// they install, RUNBOOK.md).
func (s *Service) Periodic(ctx context.Context, mounts []engine.Mount) error {
	if s.d.Public == nil {
		return nil
	}
	var errs []error
	for _, m := range mounts {
		if err := s.refresh(ctx, m); err != nil {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Service) refresh(ctx context.Context, m engine.Mount) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var info CAInfo
	if err := getJSON(ctx, m.Storage, kindCA, keyCAPublic, &info); err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		return err
	}
	var st revocations
	if err := getJSON(ctx, m.Storage, kindCA, keyKRL, &st); err != nil {
		return err
	}
	want := publicOf(info, &st)
	pub, err := s.d.Public.SSHPublic(ctx, m.ID)
	switch {
	case err == nil && samePublic(pub, want):
		return nil
	case err == nil:
		s.d.Logger.Warn("ssh public material differed from the barrier's; rewriting it", "mount", m.Name,
			"published_krl_version", pub.KRLVersion, "krl_version", st.Version)
	case !errors.Is(err, engine.ErrNotFound):
		return err
	}
	if err := s.d.Public.PutSSHPublic(ctx, m.ID, want); err != nil {
		return err
	}
	s.d.Logger.Info("ssh public material published", "mount", m.Name, "krl_version", st.Version)
	return nil
}

func samePublic(a, b store.SSHPublic) bool {
	return a.KeyType == b.KeyType && a.PublicKey == b.PublicKey && a.Fingerprint == b.Fingerprint && a.CreatedAt.Equal(b.CreatedAt) &&
		a.KRLVersion == b.KRLVersion && a.KRLGeneratedAt.Equal(b.KRLGeneratedAt) && bytes.Equal(a.KRL, b.KRL)
}
