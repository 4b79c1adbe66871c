package sshca

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/enginetest"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// TestPublishedCopy runs the engine on the real store and barrier and
// checks the public copy: written with the CA, rewritten by every
// revocation with a strictly later date (the clock stands still, so each
// KRL falls in the same second), read while sealed, and restored by
// Periodic when it is missing or altered in the database.
func TestPublishedCopy(t *testing.T) {
	ctx := t.Context()
	r := enginetest.NewReal(t)
	now := time.Now().UTC().Truncate(time.Second)
	svc := New(Deps{Mounts: r.Mounts, Authz: r.Policy, Sealed: r.Barrier.Sealed, Public: r.Store, Now: func() time.Time { return now }})
	r.Registry.Register(svc)
	if _, err := r.Mounts.Create(ctx, "ssh", Type); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Public(ctx, "ssh"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("public copy before the CA: %v", err)
	}
	ca, err := svc.GenerateCA(ctx, admin, "ssh", CARequest{})
	if err != nil {
		t.Fatal(err)
	}
	// same checks the public copy against the barrier's CA and KRL.
	same := func(what string, version uint64) store.SSHPublic {
		t.Helper()
		p, err := svc.Public(ctx, "ssh")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		k, err := svc.KRL(ctx, "ssh")
		if err != nil {
			t.Fatal(err)
		}
		if p.PublicKey != ca.PublicKey || p.Fingerprint != ca.Fingerprint || p.KeyType != string(ca.KeyType) || !p.CreatedAt.Equal(ca.CreatedAt) ||
			p.KRLVersion != version || k.Version != version || !bytes.Equal(p.KRL, k.KRL) || !p.KRLGeneratedAt.Equal(k.GeneratedAt) {
			t.Fatalf("%s: published %+v, barrier CA %+v KRL v%d", what, p, ca, k.Version)
		}
		return p
	}
	prev := same("after generate-ca", 1)
	if _, err := svc.CreateProfile(ctx, admin, "ssh", ProfileRequest{Name: "users", CertType: "user", AllowedPrincipals: []string{"{{username}}"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, pub := newKey(t)
		s, err := svc.Sign(ctx, admin, "ssh", SignRequest{Profile: "users", PublicKey: pub, Principals: []string{"admin"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Revoke(ctx, admin, "ssh", RevokeRequest{Serial: strconv.FormatUint(s.Record.Serial, 10)}); err != nil {
			t.Fatal(err)
		}
		p := same("after a revocation", uint64(i)+2)
		if !p.KRLGeneratedAt.After(prev.KRLGeneratedAt) {
			t.Fatalf("KRL v%d dated %v, not after v%d's %v", p.KRLVersion, p.KRLGeneratedAt, prev.KRLVersion, prev.KRLGeneratedAt)
		}
		prev = p
	}

	r.Barrier.Seal()
	if _, err := svc.KRL(ctx, "ssh"); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("KRL while sealed: %v", err)
	}
	if p, err := svc.Public(ctx, "ssh"); err != nil || !bytes.Equal(p.KRL, prev.KRL) || p.PublicKey != ca.PublicKey {
		t.Fatalf("public copy while sealed: %+v %v", p, err)
	}
	if err := r.Barrier.Unseal(ctx, []byte(enginetest.Password)); err != nil {
		t.Fatal(err)
	}

	// Periodic restores a copy that is missing, or altered in the
	// database (an empty KRL with a higher version, another CA key).
	for _, alter := range []string{
		`DELETE FROM ssh_public`,
		`UPDATE ssh_public SET krl = x'00', krl_version = 99`,
		`UPDATE ssh_public SET public_key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwn attacker'`,
	} {
		if _, err := r.Store.DB().ExecContext(ctx, alter); err != nil {
			t.Fatal(err)
		}
		if p, err := svc.Public(ctx, "ssh"); err == nil && bytes.Equal(p.KRL, prev.KRL) && p.PublicKey == ca.PublicKey {
			t.Fatalf("%s changed nothing", alter)
		}
		if err := r.Mounts.Periodic(ctx); err != nil {
			t.Fatal(err)
		}
		same("after Periodic repaired "+alter, 4)
	}
}
