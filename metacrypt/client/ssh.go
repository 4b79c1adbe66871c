package client

import (
	"context"
	"strconv"
	"time"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// SSHCA is an SSH mount's CA: PublicKey is the authorized_keys line for
// sshd's TrustedUserCAKeys or a known_hosts "@cert-authority" line.
type SSHCA struct {
	KeyType     string    `json:"key_type"`
	PublicKey   string    `json:"public_key"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

func sshCAOf(r *mcv1.SSHCAResponse) SSHCA {
	c := r.GetCa()
	return SSHCA{KeyType: c.GetKeyType(), PublicKey: c.GetPublicKey(), Fingerprint: c.GetFingerprint(), CreatedAt: c.GetCreatedAt().AsTime()}
}

// GenerateSSHCA creates the mount's CA key: ed25519 (default, keyType
// ""), ec-p256, ec-p384, rsa-3072 or rsa-4096.
func (c *Client) GenerateSSHCA(ctx context.Context, mount, keyType string) (SSHCA, error) {
	r, err := c.ssh.GenerateCA(ctx, &mcv1.GenerateSSHCARequest{Mount: mount, KeyType: keyType})
	if err != nil {
		return SSHCA{}, c.conn.Err(err)
	}
	return sshCAOf(r), nil
}

// SSHCA returns the mount's CA.
func (c *Client) SSHCA(ctx context.Context, mount string) (SSHCA, error) {
	r, err := c.ssh.GetCA(ctx, &mcv1.GetSSHCARequest{Mount: mount})
	if err != nil {
		return SSHCA{}, c.conn.Err(err)
	}
	return sshCAOf(r), nil
}

// SSHKRL is a mount's current KRL: KRL is the OpenSSH binary KRL for
// sshd's RevokedKeys.
type SSHKRL struct {
	Version     uint64    `json:"version"`
	GeneratedAt time.Time `json:"generated_at"`
	KRL         []byte    `json:"krl"`
}

// SSHKRL returns the mount's current KRL.
func (c *Client) SSHKRL(ctx context.Context, mount string) (SSHKRL, error) {
	r, err := c.ssh.KRL(ctx, &mcv1.GetSSHKRLRequest{Mount: mount})
	if err != nil {
		return SSHKRL{}, c.conn.Err(err)
	}
	return SSHKRL{Version: r.GetVersion(), GeneratedAt: r.GetGeneratedAt().AsTime(), KRL: r.GetKrl()}, nil
}

// SSHProfileRequest creates or replaces a signing profile; zero fields
// take the defaults. Principal patterns may use "*" and "{{username}}"
// (the caller's MCIAS username).
type SSHProfileRequest struct {
	Name, CertType                       string
	AllowedPrincipals, DefaultPrincipals []string
	MaxTTL, DefaultTTL                   time.Duration
	AllowedExtensions, DefaultExtensions []string
	CriticalOptions                      map[string]string
	AllowedCriticalOptions, KeyTypes     []string
	MinRSABits                           int
}

// SSHProfile is a signing profile.
type SSHProfile struct {
	Name                   string            `json:"name"`
	CertType               string            `json:"cert_type"`
	AllowedPrincipals      []string          `json:"allowed_principals"`
	DefaultPrincipals      []string          `json:"default_principals"`
	MaxTTL                 string            `json:"max_ttl"`
	DefaultTTL             string            `json:"default_ttl"`
	AllowedExtensions      []string          `json:"allowed_extensions"`
	DefaultExtensions      []string          `json:"default_extensions"`
	CriticalOptions        map[string]string `json:"critical_options"`
	AllowedCriticalOptions []string          `json:"allowed_critical_options"`
	KeyTypes               []string          `json:"key_types"`
	MinRSABits             int               `json:"min_rsa_bits"`
	CreatedAt              time.Time         `json:"created_at"`
	UpdatedAt              time.Time         `json:"updated_at"`
}

func sshProfileOf(p *mcv1.SSHProfile) SSHProfile {
	return SSHProfile{
		Name: p.GetName(), CertType: p.GetCertType(), AllowedPrincipals: p.GetAllowedPrincipals(),
		DefaultPrincipals: p.GetDefaultPrincipals(), MaxTTL: p.GetMaxTtl(), DefaultTTL: p.GetDefaultTtl(),
		AllowedExtensions: p.GetAllowedExtensions(), DefaultExtensions: p.GetDefaultExtensions(),
		CriticalOptions: p.GetCriticalOptions(), AllowedCriticalOptions: p.GetAllowedCriticalOptions(),
		KeyTypes: p.GetKeyTypes(), MinRSABits: int(p.GetMinRsaBits()), CreatedAt: p.GetCreatedAt().AsTime(), UpdatedAt: p.GetUpdatedAt().AsTime(),
	}
}

func (r SSHProfileRequest) pb(mount string) *mcv1.SSHProfileRequest {
	return &mcv1.SSHProfileRequest{
		Mount: mount, Name: r.Name, CertType: r.CertType, AllowedPrincipals: r.AllowedPrincipals, DefaultPrincipals: r.DefaultPrincipals,
		MaxTtl: FormatDuration(r.MaxTTL), DefaultTtl: FormatDuration(r.DefaultTTL), AllowedExtensions: r.AllowedExtensions,
		DefaultExtensions: r.DefaultExtensions, CriticalOptions: r.CriticalOptions, AllowedCriticalOptions: r.AllowedCriticalOptions,
		KeyTypes: r.KeyTypes, MinRsaBits: int32(r.MinRSABits), //nolint:gosec // the server bounds it to 16384
	}
}

// CreateSSHProfile adds a signing profile.
func (c *Client) CreateSSHProfile(ctx context.Context, mount string, r SSHProfileRequest) (SSHProfile, error) {
	resp, err := c.ssh.CreateProfile(ctx, r.pb(mount))
	if err != nil {
		return SSHProfile{}, c.conn.Err(err)
	}
	return sshProfileOf(resp.GetProfile()), nil
}

// UpdateSSHProfile replaces a profile's settings as a whole.
func (c *Client) UpdateSSHProfile(ctx context.Context, mount string, r SSHProfileRequest) (SSHProfile, error) {
	resp, err := c.ssh.UpdateProfile(ctx, r.pb(mount))
	if err != nil {
		return SSHProfile{}, c.conn.Err(err)
	}
	return sshProfileOf(resp.GetProfile()), nil
}

// DeleteSSHProfile removes a profile.
func (c *Client) DeleteSSHProfile(ctx context.Context, mount, name string) error {
	_, err := c.ssh.DeleteProfile(ctx, &mcv1.DeleteSSHProfileRequest{Mount: mount, Name: name})
	return c.conn.Err(err)
}

// SSHProfile returns one profile.
func (c *Client) SSHProfile(ctx context.Context, mount, name string) (SSHProfile, error) {
	resp, err := c.ssh.GetProfile(ctx, &mcv1.GetSSHProfileRequest{Mount: mount, Name: name})
	if err != nil {
		return SSHProfile{}, c.conn.Err(err)
	}
	return sshProfileOf(resp.GetProfile()), nil
}

// SSHProfiles lists the profiles.
func (c *Client) SSHProfiles(ctx context.Context, mount string) ([]SSHProfile, error) {
	resp, err := c.ssh.ListProfiles(ctx, &mcv1.ListSSHProfilesRequest{Mount: mount})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]SSHProfile, 0, len(resp.GetProfiles()))
	for _, p := range resp.GetProfiles() {
		out = append(out, sshProfileOf(p))
	}
	return out, nil
}

// SSHCertificate is the record of a signed SSH certificate; Certificate
// is its -cert.pub line.
type SSHCertificate struct {
	Serial          uint64            `json:"serial"`
	CertType        string            `json:"cert_type"`
	Profile         string            `json:"profile"`
	KeyID           string            `json:"key_id"`
	Principals      []string          `json:"principals"`
	ValidAfter      time.Time         `json:"valid_after"`
	ValidBefore     time.Time         `json:"valid_before"`
	Extensions      []string          `json:"extensions"`
	CriticalOptions map[string]string `json:"critical_options"`
	KeyType         string            `json:"key_type"`
	KeyFingerprint  string            `json:"key_fingerprint"`
	RequestedBy     string            `json:"requested_by"`
	CreatedAt       time.Time         `json:"created_at"`
	Revoked         bool              `json:"revoked"`
	RevokedAt       *time.Time        `json:"revoked_at,omitempty"`
	Certificate     string            `json:"certificate"`
}

// Status is valid, revoked or expired at now.
func (s SSHCertificate) Status(now time.Time) string {
	switch {
	case s.Revoked:
		return "revoked"
	case !now.Before(s.ValidBefore):
		return "expired"
	}
	return "valid"
}

func sshCertOf(c *mcv1.SSHCertificate) SSHCertificate {
	out := SSHCertificate{
		Serial: c.GetSerial(), CertType: c.GetCertType(), Profile: c.GetProfile(), KeyID: c.GetKeyId(), Principals: c.GetPrincipals(),
		ValidAfter: c.GetValidAfter().AsTime(), ValidBefore: c.GetValidBefore().AsTime(), Extensions: c.GetExtensions(),
		CriticalOptions: c.GetCriticalOptions(), KeyType: c.GetKeyType(), KeyFingerprint: c.GetKeyFingerprint(),
		RequestedBy: c.GetRequestedBy(), CreatedAt: c.GetCreatedAt().AsTime(), Revoked: c.GetRevoked(), Certificate: c.GetCertificate(),
	}
	if c.GetRevoked() {
		t := c.GetRevokedAt().AsTime()
		out.RevokedAt = &t
	}
	return out
}

// SSHSignRequest asks for a certificate of PublicKey (an OpenSSH .pub
// line) under Profile; empty fields take the profile's defaults.
type SSHSignRequest struct {
	Profile, PublicKey string
	Principals         []string
	TTL                time.Duration
	Extensions         []string
	CriticalOptions    map[string]string
}

// SSHSigned is a signed certificate: Certificate is the -cert.pub line.
type SSHSigned struct {
	Certificate string         `json:"certificate"`
	Record      SSHCertificate `json:"record"`
}

// SignSSH signs a user or host certificate.
func (c *Client) SignSSH(ctx context.Context, mount string, r SSHSignRequest) (SSHSigned, error) {
	resp, err := c.ssh.Sign(ctx, &mcv1.SSHSignRequest{
		Mount: mount, Profile: r.Profile, PublicKey: r.PublicKey, Principals: r.Principals, Ttl: FormatDuration(r.TTL),
		Extensions: r.Extensions, CriticalOptions: r.CriticalOptions,
	})
	if err != nil {
		return SSHSigned{}, c.conn.Err(err)
	}
	return SSHSigned{Certificate: resp.GetCertificate(), Record: sshCertOf(resp.GetRecord())}, nil
}

// SSHCertificate returns one certificate's record by serial.
func (c *Client) SSHCertificate(ctx context.Context, mount string, serial uint64) (SSHCertificate, error) {
	resp, err := c.ssh.GetCertificate(ctx, &mcv1.GetSSHCertificateRequest{Mount: mount, Serial: strconv.FormatUint(serial, 10)})
	if err != nil {
		return SSHCertificate{}, c.conn.Err(err)
	}
	return sshCertOf(resp.GetCertificate()), nil
}

// SSHFilter selects certificate records; zero fields select all.
type SSHFilter struct {
	Profile, Principal, RequestedBy string
	// Status is valid, revoked or expired.
	Status string
	Limit  int
}

// SSHCertificates searches the records, newest first.
func (c *Client) SSHCertificates(ctx context.Context, mount string, f SSHFilter) ([]SSHCertificate, error) {
	resp, err := c.ssh.ListCertificates(ctx, &mcv1.ListSSHCertificatesRequest{
		Mount: mount, Profile: f.Profile, Principal: f.Principal, RequestedBy: f.RequestedBy, Status: f.Status,
		Limit: int32(f.Limit), //nolint:gosec // the server bounds it to 1000
	})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]SSHCertificate, 0, len(resp.GetCertificates()))
	for _, cert := range resp.GetCertificates() {
		out = append(out, sshCertOf(cert))
	}
	return out, nil
}

// SSHRevokeRequest names exactly one thing to revoke: a serial, a public
// key (the key and its certificates), a SHA256 fingerprint or a key ID.
type SSHRevokeRequest struct {
	Serial                        uint64
	PublicKey, Fingerprint, KeyID string
}

// SSHRevocation is a revocation's outcome: the KRL version that includes
// it and the certificates it marked revoked.
type SSHRevocation struct {
	KRLVersion uint64   `json:"krl_version"`
	Serials    []uint64 `json:"serials"`
}

// RevokeSSH revokes and rebuilds the KRL.
func (c *Client) RevokeSSH(ctx context.Context, mount string, r SSHRevokeRequest) (SSHRevocation, error) {
	req := &mcv1.SSHRevokeRequest{Mount: mount, PublicKey: r.PublicKey, Fingerprint: r.Fingerprint, KeyId: r.KeyID}
	if r.Serial != 0 {
		req.Serial = strconv.FormatUint(r.Serial, 10)
	}
	resp, err := c.ssh.Revoke(ctx, req)
	if err != nil {
		return SSHRevocation{}, c.conn.Err(err)
	}
	return SSHRevocation{KRLVersion: resp.GetKrlVersion(), Serials: resp.GetSerials()}, nil
}
