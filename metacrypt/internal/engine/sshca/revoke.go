package sshca

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// RevokeRequest names what to revoke: exactly one of a certificate's
// serial, a public key (every certificate of it, and the key itself), a
// key's SHA256 fingerprint (the same, without the key at hand) or a key
// ID (every certificate of this CA with that ID).
type RevokeRequest struct {
	Serial      string `json:"serial"`
	PublicKey   string `json:"public_key"`
	Fingerprint string `json:"fingerprint"`
	KeyID       string `json:"key_id"`
}

// Revocation is the outcome of a revocation.
type Revocation struct {
	// KRLVersion is the version of the KRL that includes it.
	KRLVersion uint64 `json:"krl_version"`
	// Serials are the mount's certificates it newly marked revoked.
	Serials []uint64 `json:"serials"`
}

// KRLInfo is the mount's current KRL.
type KRLInfo struct {
	Version     uint64    `json:"version"`
	GeneratedAt time.Time `json:"generated_at"`
	// KRL is the OpenSSH binary KRL (sshd's RevokedKeys, ssh-keygen -Q).
	KRL []byte `json:"krl"`
}

// revocations is a mount's revocation state, stored with the KRL
// encoded from it.
type revocations struct {
	Version     uint64    `json:"version"`
	GeneratedAt time.Time `json:"generated_at"`
	Serials     []uint64  `json:"serials,omitempty"`
	KeyIDs      []string  `json:"key_ids,omitempty"`
	Keys        [][]byte  `json:"keys,omitempty"`
	SHA256      [][]byte  `json:"sha256,omitempty"`
	KRL         []byte    `json:"krl"`
}

// Revoke revokes and rebuilds the KRL (version + 1). A serial needs
// revoke on "profile/<its profile>" and, unless the caller is an admin,
// every principal of the certificate allowed to the caller by that
// profile: who could not have obtained it may not revoke it. A key,
// fingerprint or key ID needs revoke on "krl". Revoking what is revoked
// already is a conflict.
func (s *Service) Revoke(ctx context.Context, c engine.Caller, mount string, r RevokeRequest) (Revocation, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Revocation{}, err
	}
	t, err := parseTarget(r)
	if err != nil {
		return Revocation{}, err
	}
	if t.serial != 0 {
		if err := s.authorizeSerial(ctx, c, m, t.serial); err != nil {
			return Revocation{}, err
		}
	} else if err := s.authorize(ctx, c, m, policy.OpRevoke, resourceKRL); err != nil {
		return Revocation{}, err
	}
	info, err := loadCAInfo(ctx, m)
	if err != nil {
		return Revocation{}, err
	}
	caPub, err := caPublicKey(info)
	if err != nil {
		return Revocation{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var st revocations
	if err := getJSON(ctx, m.Storage, kindCA, keyKRL, &st); err != nil {
		return Revocation{}, err
	}
	if !t.addTo(&st) {
		return Revocation{}, wrapf(engine.ErrConflict, "%s is revoked already", t)
	}
	marked, err := s.matching(ctx, m, t)
	if err != nil {
		return Revocation{}, err
	}
	st.Version++
	if err := s.putRevocations(ctx, m, caPub, &st); err != nil {
		return Revocation{}, err
	}
	s.publish(ctx, m, info, &st)
	now := s.now()
	out := Revocation{KRLVersion: st.Version}
	for _, rec := range marked {
		rec.RevokedAt = &now
		if err := putJSON(ctx, m.Storage, kindCert, certKey(rec.Serial), rec); err != nil {
			return Revocation{}, err
		}
		out.Serials = append(out.Serials, rec.Serial)
	}
	s.d.Logger.Info("ssh revocation", "mount", m.Name, "what", t.kind, "certificates", len(out.Serials), "krl_version", st.Version, "by", c.Username)
	return out, nil
}

// authorizeSerial checks revoke on the certificate's profile and, for a
// non-admin, that the profile allows the caller its principals.
func (s *Service) authorizeSerial(ctx context.Context, c engine.Caller, m engine.Mount, serial uint64) error {
	rec, err := loadCert(ctx, m, serial)
	if err != nil {
		if aerr := s.authorize(ctx, c, m, policy.OpRead, resourceCerts); aerr != nil {
			return aerr
		}
		return err
	}
	if err := s.authorize(ctx, c, m, policy.OpRevoke, resourceProfile(rec.Profile)); err != nil {
		return err
	}
	if c.IsAdmin() {
		return nil
	}
	p, err := loadProfile(ctx, m, rec.Profile)
	if err != nil {
		return wrapf(engine.ErrDenied, "profile %s of certificate %d is gone; only an admin may revoke it", rec.Profile, serial)
	}
	for _, pr := range rec.Principals {
		if !p.principalAllowed(pr, c.Username) {
			return wrapf(engine.ErrDenied, "principal %q of certificate %d is not %s's under profile %s", pr, serial, c.Username, p.Name)
		}
	}
	return nil
}

// target is one thing to revoke.
type target struct {
	kind        string
	serial      uint64
	key         ssh.PublicKey
	fingerprint []byte
	keyID       string
}

func (t target) String() string {
	switch {
	case t.serial != 0:
		return "certificate serial " + strconv.FormatUint(t.serial, 10)
	case t.key != nil:
		return "key " + ssh.FingerprintSHA256(t.key)
	case t.fingerprint != nil:
		return "key SHA256:" + base64.RawStdEncoding.EncodeToString(t.fingerprint)
	}
	return "key ID " + t.keyID
}

func parseTarget(r RevokeRequest) (target, error) {
	var set []string
	for _, f := range []struct{ name, v string }{
		{"serial", r.Serial}, {"public_key", r.PublicKey}, {"fingerprint", r.Fingerprint}, {"key_id", r.KeyID},
	} {
		if f.v != "" {
			set = append(set, f.name)
		}
	}
	if len(set) != 1 {
		field := "serial"
		if len(set) > 1 {
			field = set[1]
		}
		return target{}, apierr.InvalidField(field, "give exactly one of serial, public_key, fingerprint and key_id")
	}
	t := target{kind: set[0]}
	var err error
	switch set[0] {
	case "serial":
		t.serial, err = ParseSerial("serial", r.Serial)
	case "public_key":
		t.key, err = parsePublicKey("public_key", r.PublicKey)
	case "fingerprint":
		t.fingerprint, err = parseFingerprint("fingerprint", r.Fingerprint)
	case "key_id":
		if len(r.KeyID) > 255 || strings.ContainsFunc(r.KeyID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			err = apierr.InvalidField("key_id", "must be 1-255 printable characters")
		}
		t.keyID = r.KeyID
	}
	return t, err
}

// parseFingerprint reads OpenSSH's "SHA256:<unpadded base64>".
func parseFingerprint(field, s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "SHA256:")
	h, err := base64.RawStdEncoding.DecodeString(b64)
	if !ok || err != nil || len(h) != sha256.Size {
		return nil, apierr.InvalidField(field, "%q is not a SHA256 key fingerprint (SHA256:<base64>, as ssh-keygen -l prints)", s)
	}
	return h, nil
}

// addTo adds the target to the revocation state, reporting false if it
// is there already.
func (t target) addTo(st *revocations) bool {
	switch {
	case t.serial != 0:
		if slices.Contains(st.Serials, t.serial) {
			return false
		}
		st.Serials = append(st.Serials, t.serial)
	case t.key != nil:
		blob := t.key.Marshal()
		if slices.ContainsFunc(st.Keys, func(b []byte) bool { return bytes.Equal(b, blob) }) {
			return false
		}
		st.Keys = append(st.Keys, blob)
	case t.fingerprint != nil:
		if slices.ContainsFunc(st.SHA256, func(b []byte) bool { return bytes.Equal(b, t.fingerprint) }) {
			return false
		}
		st.SHA256 = append(st.SHA256, t.fingerprint)
	default:
		if slices.Contains(st.KeyIDs, t.keyID) {
			return false
		}
		st.KeyIDs = append(st.KeyIDs, t.keyID)
	}
	return true
}

// matching are the unrevoked certificate records the target revokes.
func (s *Service) matching(ctx context.Context, m engine.Mount, t target) ([]Certificate, error) {
	if t.serial != 0 {
		rec, err := loadCert(ctx, m, t.serial)
		if err != nil || rec.RevokedAt != nil {
			return nil, err
		}
		return []Certificate{rec}, nil
	}
	var fp string
	switch {
	case t.key != nil:
		fp = ssh.FingerprintSHA256(t.key)
	case t.fingerprint != nil:
		fp = "SHA256:" + base64.RawStdEncoding.EncodeToString(t.fingerprint)
	}
	keys, err := m.Storage.List(ctx, kindCert)
	if err != nil {
		return nil, err
	}
	var out []Certificate
	for _, k := range keys {
		var rec Certificate
		if err := getJSON(ctx, m.Storage, kindCert, k, &rec); err != nil {
			return nil, err
		}
		if rec.RevokedAt == nil && ((fp != "" && rec.KeyFingerprint == fp) || (t.keyID != "" && rec.KeyID == t.keyID)) {
			out = append(out, rec)
		}
	}
	return out, nil
}

// putRevocations encodes the state's KRL and stores both. Its date is
// strictly later than the previous KRL's (a second later when two are
// made within one), so whoever fetches the KRL by modification time —
// HTTP Last-Modified, curl -z — never takes a newer one for the same.
func (s *Service) putRevocations(ctx context.Context, m engine.Mount, caPub ssh.PublicKey, st *revocations) error {
	now := s.now()
	if !now.After(st.GeneratedAt) {
		now = st.GeneratedAt.Add(time.Second)
	}
	st.GeneratedAt = now
	krl, err := KRL{
		Version: st.Version, GeneratedAt: st.GeneratedAt, Comment: "metacrypt ssh mount " + m.Name, CAKey: caPub.Marshal(),
		Serials: st.Serials, KeyIDs: st.KeyIDs, Keys: st.Keys, SHA256: st.SHA256,
	}.Marshal()
	if err != nil {
		return err
	}
	st.KRL = krl
	return putJSON(ctx, m.Storage, kindCA, keyKRL, st)
}

// KRL returns the mount's current KRL. It is public (no caller, no ACL),
// for sshd's RevokedKeys; it needs the barrier unsealed (Public serves
// the published copy while sealed).
func (s *Service) KRL(ctx context.Context, mount string) (KRLInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return KRLInfo{}, err
	}
	if _, err := loadCAInfo(ctx, m); err != nil {
		return KRLInfo{}, err
	}
	var st revocations
	if err := getJSON(ctx, m.Storage, kindCA, keyKRL, &st); err != nil {
		return KRLInfo{}, err
	}
	return KRLInfo{Version: st.Version, GeneratedAt: st.GeneratedAt, KRL: st.KRL}, nil
}
