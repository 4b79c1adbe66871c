package acme

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Nonces (RFC 8555 §6.5) are stored through the barrier in the mount's
// storage, so they survive a restart and are single use across every
// request path. A nonce is its issue time (16 hex digits of Unix
// nanoseconds, so the store lists nonces oldest first) and 16 random
// bytes: an expired nonce is refused without a lookup, and pruning drops
// expired ones and then the oldest beyond Config.MaxNonces.

// pruneEvery is how many nonces a mount issues between prunings.
const pruneEvery = 100

// NewNonce issues a fresh nonce for a mount.
func (s *Service) NewNonce(ctx context.Context, mount string) (string, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return "", err
	}
	n := fmt.Sprintf("%016x", s.d.Now().UnixNano()) + newID(16)
	if err := st.PutNonce(ctx, n); err != nil {
		return "", err
	}
	s.noncesMu.Lock()
	s.nonces[mount]++
	prune := s.nonces[mount] >= pruneEvery
	if prune {
		s.nonces[mount] = 0
	}
	s.noncesMu.Unlock()
	if prune {
		if err := s.pruneNonces(ctx, st); err != nil {
			s.d.Logger.Warn("acme: nonces not pruned", "mount", mount, "error", err)
		}
	}
	return n, nil
}

// nonceTime is when a nonce was issued (ok false for anything that is
// not one of ours).
func nonceTime(n string) (time.Time, bool) {
	if len(n) != 16+22 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(n[:16], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)), true //nolint:gosec // parsed from 16 hex digits we wrote
}

// UseNonce consumes a nonce: a nonce never issued, already used, expired
// or pruned is a badNonce problem (the client retries with the fresh
// nonce of the error answer).
func (s *Service) UseNonce(ctx context.Context, mount, nonce string) error {
	st, err := s.store(ctx, mount)
	if err != nil {
		return err
	}
	issued, ok := nonceTime(nonce)
	if !ok || s.d.Now().Sub(issued) > s.d.Config.NonceLifetime {
		return NewProblem(ErrBadNonce, "unknown or expired nonce")
	}
	unlock := s.locks.lock("nonce/" + mount + "/" + nonce)
	defer unlock()
	found, err := st.TakeNonce(ctx, nonce)
	if err != nil {
		return err
	}
	if !found {
		return NewProblem(ErrBadNonce, "unknown or already used nonce")
	}
	return nil
}

// pruneNonces drops expired nonces, then the oldest beyond MaxNonces.
func (s *Service) pruneNonces(ctx context.Context, st Store) error {
	list, err := st.Nonces(ctx)
	if err != nil {
		return err
	}
	now := s.d.Now()
	excess := len(list) - s.d.Config.MaxNonces
	for i, n := range list {
		t, ok := nonceTime(n)
		if i >= excess && ok && now.Sub(t) <= s.d.Config.NonceLifetime {
			// Sorted oldest first: the rest are newer.
			break
		}
		if err := st.DeleteNonce(ctx, n); err != nil {
			return err
		}
	}
	return nil
}
