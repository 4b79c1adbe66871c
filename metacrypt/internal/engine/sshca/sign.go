package sshca

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// SignRequest asks for a certificate of a public key under a profile.
type SignRequest struct {
	Profile string `json:"profile"`
	// PublicKey is an OpenSSH public key, as in a .pub file.
	PublicKey string `json:"public_key"`
	// Principals are the user or host names to certify; empty means the
	// profile's default principals.
	Principals []string `json:"principals"`
	// TTL is the validity ("8h"); empty means the profile's default.
	TTL string `json:"ttl"`
	// Extensions to sign; empty means the profile's defaults.
	Extensions []string `json:"extensions"`
	// CriticalOptions may set the options the profile allows and does
	// not set itself.
	CriticalOptions map[string]string `json:"critical_options"`
}

// Signed is a signed certificate and its record.
type Signed struct {
	// Certificate is the certificate in OpenSSH's public key form
	// ("<type>-cert-v01@openssh.com AAAA..."), as in a -cert.pub file.
	Certificate string      `json:"certificate"`
	Record      Certificate `json:"record"`
}

// backdate tolerates clock skew between Metacrypt and the servers and
// clients checking the certificate.
const backdate = 5 * time.Minute

// maxPublicKeyLen bounds the public key input (an RSA 16384 key is
// about 2.8 KiB in base64).
const maxPublicKeyLen = 16 << 10

// Sign signs a user or host certificate (sign on "profile/<name>"). The
// key type, principals, TTL, extensions and critical options must fit
// the profile, admins included; the serial is the mount's next, and the
// key ID is the caller's username, so sshd logs who obtained the
// certificate and a KRL can revoke by key ID everything a user obtained.
func (s *Service) Sign(ctx context.Context, c engine.Caller, mount string, r SignRequest) (Signed, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Signed{}, err
	}
	if err := validateProfileName("profile", r.Profile); err != nil {
		return Signed{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpSign, resourceProfile(r.Profile)); err != nil {
		return Signed{}, err
	}
	p, err := loadProfile(ctx, m, r.Profile)
	if err != nil {
		return Signed{}, err
	}
	pub, err := parsePublicKey("public_key", r.PublicKey)
	if err != nil {
		return Signed{}, err
	}
	if err := p.checkKey("public_key", pub); err != nil {
		return Signed{}, err
	}
	principals, err := p.principals(r.Principals, c.Username)
	if err != nil {
		return Signed{}, err
	}
	ttl, err := pki.ParseDuration("ttl", r.TTL)
	if err != nil {
		return Signed{}, err
	}
	if ttl == 0 {
		ttl = p.DefaultTTL
	}
	if ttl > p.MaxTTL {
		return Signed{}, apierr.InvalidField("ttl", "%s is above the profile's max_ttl %s", pki.FormatDuration(ttl), pki.FormatDuration(p.MaxTTL))
	}
	exts, err := p.extensions(r.Extensions)
	if err != nil {
		return Signed{}, err
	}
	opts, err := p.criticalOptions(r.CriticalOptions)
	if err != nil {
		return Signed{}, err
	}
	signer, err := loadSigner(ctx, m)
	if err != nil {
		return Signed{}, err
	}
	serial, err := s.nextSerial(ctx, m)
	if err != nil {
		return Signed{}, err
	}
	now := s.now()
	cert := &ssh.Certificate{
		Key: pub, Serial: serial, KeyId: c.Username, ValidPrincipals: principals,
		ValidAfter: uint64(now.Add(-backdate).Unix()), ValidBefore: uint64(now.Add(ttl).Unix()), //nolint:gosec // times after 1970
		Permissions: ssh.Permissions{CriticalOptions: opts, Extensions: map[string]string{}},
	}
	cert.CertType = ssh.UserCert
	if p.CertType == HostCert {
		cert.CertType = ssh.HostCert
	}
	for _, e := range exts {
		cert.Extensions[e] = ""
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		return Signed{}, fmt.Errorf("sign certificate: %w", err)
	}
	rec := Certificate{
		Serial: serial, CertType: p.CertType, Profile: p.Name, KeyID: cert.KeyId, Principals: principals,
		ValidAfter: now.Add(-backdate), ValidBefore: now.Add(ttl), Extensions: exts, CriticalOptions: opts,
		KeyType: pub.Type(), KeyFingerprint: ssh.FingerprintSHA256(pub), RequestedBy: c.Username, CreatedAt: now,
		Certificate: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))),
	}
	if err := putJSON(ctx, m.Storage, kindCert, certKey(serial), rec); err != nil {
		return Signed{}, err
	}
	s.d.Logger.Info("ssh certificate signed", "mount", m.Name, "serial", serial, "profile", p.Name, "type", p.CertType,
		"principals", len(principals), "ttl", ttl, "by", c.Username)
	return Signed{Certificate: rec.Certificate, Record: rec}, nil
}

// nextSerial takes the mount's next serial number (serials start at 1:
// OpenSSH reserves 0 for "no serial", which a KRL cannot revoke).
func (s *Service) nextSerial(ctx context.Context, m engine.Mount) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	if err := getJSON(ctx, m.Storage, kindCA, keySerial, &n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("stored serial counter of %s is 0", m.Name)
	}
	if err := putJSON(ctx, m.Storage, kindCA, keySerial, n+1); err != nil {
		return 0, err
	}
	return n, nil
}

// parsePublicKey reads one OpenSSH public key ("<type> <base64>
// [comment]"): not a certificate, no authorized_keys options, of a type
// a profile may allow.
func parsePublicKey(field, s string) (ssh.PublicKey, error) {
	if len(s) > maxPublicKeyLen {
		return nil, apierr.InvalidField(field, "longer than %d bytes", maxPublicKeyLen)
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, apierr.InvalidField(field, "not an OpenSSH public key: %v", err)
	}
	if len(options) > 0 {
		return nil, apierr.InvalidField(field, "authorized_keys options are not accepted")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, apierr.InvalidField(field, "more than one key")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, apierr.InvalidField(field, "a certificate, not a public key")
	}
	if !slices.Contains(KeyTypes, pub.Type()) {
		return nil, apierr.InvalidField(field, "key type %s is not supported (%s)", pub.Type(), strings.Join(KeyTypes, ", "))
	}
	return pub, nil
}

// checkKey checks the key's type and, for RSA, its size against the
// profile.
func (p Profile) checkKey(field string, pub ssh.PublicKey) error {
	if !slices.Contains(p.KeyTypes, pub.Type()) {
		return apierr.InvalidField(field, "key type %s is not allowed by profile %s (%s)", pub.Type(), p.Name, strings.Join(p.KeyTypes, ", "))
	}
	if pub.Type() != ssh.KeyAlgoRSA {
		return nil
	}
	cp, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return apierr.InvalidField(field, "unreadable RSA key")
	}
	rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
	if !ok {
		return apierr.InvalidField(field, "unreadable RSA key")
	}
	if bits := rk.N.BitLen(); bits < p.MinRSABits {
		return apierr.InvalidField(field, "RSA key of %d bits; profile %s needs at least %d", bits, p.Name, p.MinRSABits)
	}
	return nil
}

// principals resolves the request's principals (or the defaults) and
// checks each against the profile for the caller.
func (p Profile) principals(requested []string, username string) ([]string, error) {
	field := "principals"
	in := requested
	if len(in) == 0 {
		field = "default_principals"
		for _, d := range p.DefaultPrincipals {
			in = append(in, expand(d, username))
		}
	}
	if len(in) == 0 {
		return nil, apierr.InvalidField("principals", "required (profile %s has no default principals)", p.Name)
	}
	if len(in) > maxPrincipals {
		return nil, apierr.InvalidField("principals", "at most %d", maxPrincipals)
	}
	var out []string
	for i, pr := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !principalRE.MatchString(pr) {
			return nil, apierr.InvalidField(f, "%q is not a principal (letters, digits and ._@+:%%-, 1-255)", pr)
		}
		if !p.principalAllowed(pr, username) {
			return nil, deniedField(f, "principal %q is not allowed for %s by profile %s", pr, username, p.Name)
		}
		if !slices.Contains(out, pr) {
			out = append(out, pr)
		}
	}
	return out, nil
}

// extensions resolves the request's extensions (or the defaults).
func (p Profile) extensions(requested []string) ([]string, error) {
	if len(requested) == 0 {
		return slices.Clone(p.DefaultExtensions), nil
	}
	if p.CertType == HostCert {
		return nil, apierr.InvalidField("extensions", "host certificates carry no extensions")
	}
	for i, e := range requested {
		if !slices.Contains(p.AllowedExtensions, e) {
			return nil, apierr.InvalidField(fmt.Sprintf("extensions[%d]", i), "%q is not allowed by profile %s (%s)", e, p.Name, strings.Join(p.AllowedExtensions, ", "))
		}
	}
	return sortedUnique(requested, strings.Compare), nil
}

// criticalOptions are the profile's options plus the request's, which
// may only set allowed options the profile leaves unset.
func (p Profile) criticalOptions(requested map[string]string) (map[string]string, error) {
	out := maps.Clone(p.CriticalOptions)
	if out == nil {
		out = map[string]string{}
	}
	if len(requested) == 0 {
		return out, nil
	}
	if p.CertType == HostCert {
		return nil, apierr.InvalidField("critical_options", "host certificates carry no critical options")
	}
	for _, name := range slices.Sorted(maps.Keys(requested)) {
		f := "critical_options." + name
		if _, fixed := p.CriticalOptions[name]; fixed {
			return nil, apierr.InvalidField(f, "set by profile %s and not changeable", p.Name)
		}
		if !slices.Contains(p.AllowedCriticalOptions, name) {
			return nil, apierr.InvalidField(f, "not allowed by profile %s", p.Name)
		}
	}
	req, err := parseCriticalOptions("critical_options", requested)
	if err != nil {
		return nil, err
	}
	maps.Copy(out, req)
	return out, nil
}
