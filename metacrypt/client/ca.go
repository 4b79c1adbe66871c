package client

import (
	"context"
	"time"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// Issuer is a mount's root ("root") or an intermediate issuer.
type Issuer struct {
	Name                string    `json:"name"`
	IsRoot              bool      `json:"is_root"`
	Subject             string    `json:"subject"`
	Serial              string    `json:"serial"`
	KeyType             string    `json:"key_type"`
	NotBefore           time.Time `json:"not_before"`
	NotAfter            time.Time `json:"not_after"`
	CertificatePEM      string    `json:"certificate_pem"`
	ChainPEM            string    `json:"chain_pem"`
	MaxTTL              string    `json:"max_ttl,omitempty"`
	DefaultTTL          string    `json:"default_ttl,omitempty"`
	KeyTypes            []string  `json:"key_types,omitempty"`
	Profiles            []string  `json:"profiles,omitempty"`
	PermittedDNSDomains []string  `json:"permitted_dns_domains,omitempty"`
	ExcludedDNSDomains  []string  `json:"excluded_dns_domains,omitempty"`
	PermittedIPRanges   []string  `json:"permitted_ip_ranges,omitempty"`
	ExcludedIPRanges    []string  `json:"excluded_ip_ranges,omitempty"`
}

func issuerOf(i *mcv1.Issuer) Issuer {
	return Issuer{
		Name: i.GetName(), IsRoot: i.GetIsRoot(), Subject: i.GetSubject(), Serial: i.GetSerial(), KeyType: i.GetKeyType(),
		NotBefore: i.GetNotBefore().AsTime(), NotAfter: i.GetNotAfter().AsTime(),
		CertificatePEM: i.GetCertificatePem(), ChainPEM: i.GetChainPem(), MaxTTL: i.GetMaxTtl(), DefaultTTL: i.GetDefaultTtl(),
		KeyTypes: i.GetKeyTypes(), Profiles: i.GetProfiles(), PermittedDNSDomains: i.GetPermittedDnsDomains(),
		ExcludedDNSDomains: i.GetExcludedDnsDomains(), PermittedIPRanges: i.GetPermittedIpRanges(), ExcludedIPRanges: i.GetExcludedIpRanges(),
	}
}

// RootRequest asks for a generated root; zero fields take the defaults
// (ec-p256, "Metacircular Root CA", ten years).
type RootRequest struct {
	CommonName, Organization, KeyType string
	TTL                               time.Duration
}

// GenerateRoot creates the mount's root.
func (c *Client) GenerateRoot(ctx context.Context, mount string, r RootRequest) (Issuer, error) {
	resp, err := c.ca.GenerateRoot(ctx, &mcv1.GenerateRootRequest{
		Mount: mount, CommonName: r.CommonName, Organization: r.Organization, KeyType: r.KeyType, Ttl: FormatDuration(r.TTL),
	})
	if err != nil {
		return Issuer{}, c.conn.Err(err)
	}
	return issuerOf(resp.GetRoot()), nil
}

// ImportRoot installs an existing root certificate and key (PEM).
func (c *Client) ImportRoot(ctx context.Context, mount, certPEM, keyPEM string) (Issuer, error) {
	resp, err := c.ca.ImportRoot(ctx, &mcv1.ImportRootRequest{Mount: mount, CertificatePem: certPEM, PrivateKeyPem: keyPEM})
	if err != nil {
		return Issuer{}, c.conn.Err(err)
	}
	return issuerOf(resp.GetRoot()), nil
}

// IssuerRequest asks for an intermediate issuer; zero fields take the
// defaults.
type IssuerRequest struct {
	Name, CommonName, KeyType               string
	TTL, MaxTTL, DefaultTTL                 time.Duration
	KeyTypes, Profiles                      []string
	PermittedDNSDomains, ExcludedDNSDomains []string
	PermittedIPRanges, ExcludedIPRanges     []string
}

// CreateIssuer creates an intermediate issuer signed by the root.
func (c *Client) CreateIssuer(ctx context.Context, mount string, r IssuerRequest) (Issuer, error) {
	resp, err := c.ca.CreateIssuer(ctx, &mcv1.CreateIssuerRequest{
		Mount: mount, Name: r.Name, CommonName: r.CommonName, KeyType: r.KeyType, Ttl: FormatDuration(r.TTL),
		MaxTtl: FormatDuration(r.MaxTTL), DefaultTtl: FormatDuration(r.DefaultTTL), KeyTypes: r.KeyTypes, Profiles: r.Profiles,
		PermittedDnsDomains: r.PermittedDNSDomains, ExcludedDnsDomains: r.ExcludedDNSDomains,
		PermittedIpRanges: r.PermittedIPRanges, ExcludedIpRanges: r.ExcludedIPRanges,
	})
	if err != nil {
		return Issuer{}, c.conn.Err(err)
	}
	return issuerOf(resp.GetIssuer()), nil
}

// Issuers lists the root and the issuers.
func (c *Client) Issuers(ctx context.Context, mount string) ([]Issuer, error) {
	resp, err := c.ca.ListIssuers(ctx, &mcv1.ListIssuersRequest{Mount: mount})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Issuer, 0, len(resp.GetIssuers()))
	for _, i := range resp.GetIssuers() {
		out = append(out, issuerOf(i))
	}
	return out, nil
}

// Issuer returns one issuer ("root" for the root).
func (c *Client) Issuer(ctx context.Context, mount, name string) (Issuer, error) {
	resp, err := c.ca.GetIssuer(ctx, &mcv1.GetIssuerRequest{Mount: mount, Name: name})
	if err != nil {
		return Issuer{}, c.conn.Err(err)
	}
	return issuerOf(resp.GetIssuer()), nil
}

// IssuerSettings change an issuer; zero fields keep the current value.
type IssuerSettings struct {
	MaxTTL, DefaultTTL time.Duration
	KeyTypes, Profiles []string
}

// UpdateIssuer changes an issuer's settings.
func (c *Client) UpdateIssuer(ctx context.Context, mount, name string, s IssuerSettings) (Issuer, error) {
	resp, err := c.ca.UpdateIssuer(ctx, &mcv1.UpdateIssuerRequest{Mount: mount, Name: name, Settings: &mcv1.IssuerSettings{
		MaxTtl: FormatDuration(s.MaxTTL), DefaultTtl: FormatDuration(s.DefaultTTL), KeyTypes: s.KeyTypes, Profiles: s.Profiles,
	}})
	if err != nil {
		return Issuer{}, c.conn.Err(err)
	}
	return issuerOf(resp.GetIssuer()), nil
}

// Certificate is an issued certificate as recorded.
type Certificate struct {
	Serial           string     `json:"serial"`
	Issuer           string     `json:"issuer"`
	CommonName       string     `json:"common_name"`
	DNSNames         []string   `json:"dns_names"`
	IPAddresses      []string   `json:"ip_addresses"`
	Profile          string     `json:"profile"`
	KeyType          string     `json:"key_type"`
	NotBefore        time.Time  `json:"not_before"`
	NotAfter         time.Time  `json:"not_after"`
	RequestedBy      string     `json:"requested_by"`
	CreatedAt        time.Time  `json:"created_at"`
	Revoked          bool       `json:"revoked"`
	RevokedAt        *time.Time `json:"revoked_at,omitempty"`
	RevocationReason string     `json:"revocation_reason,omitempty"`
	RenewedFrom      string     `json:"renewed_from,omitempty"`
	CertificatePEM   string     `json:"certificate_pem"`
}

func certOf(c *mcv1.Certificate) Certificate {
	out := Certificate{
		Serial: c.GetSerial(), Issuer: c.GetIssuer(), CommonName: c.GetCommonName(), DNSNames: c.GetDnsNames(),
		IPAddresses: c.GetIpAddresses(), Profile: c.GetProfile(), KeyType: c.GetKeyType(),
		NotBefore: c.GetNotBefore().AsTime(), NotAfter: c.GetNotAfter().AsTime(), RequestedBy: c.GetRequestedBy(),
		CreatedAt: c.GetCreatedAt().AsTime(), Revoked: c.GetRevoked(), RevocationReason: c.GetRevocationReason(),
		RenewedFrom: c.GetRenewedFrom(), CertificatePEM: c.GetCertificatePem(),
	}
	if c.GetRevoked() {
		t := c.GetRevokedAt().AsTime()
		out.RevokedAt = &t
	}
	return out
}

// Issued is a new certificate: ChainPEM is the full chain a server
// presents (leaf, then issuer); CAChainPEM the issuer then the root;
// PrivateKeyPEM (PKCS#8) only from Issue, and only this once.
type Issued struct {
	Certificate    Certificate `json:"certificate"`
	CertificatePEM string      `json:"certificate_pem"`
	ChainPEM       string      `json:"chain_pem"`
	CAChainPEM     string      `json:"ca_chain_pem"`
	PrivateKeyPEM  string      `json:"private_key_pem,omitempty"`
}

func issuedOf(r *mcv1.IssueResponse) Issued {
	return Issued{
		Certificate: certOf(r.GetCertificate()), CertificatePEM: r.GetCertificatePem(), ChainPEM: r.GetChainPem(),
		CAChainPEM: r.GetCaChainPem(), PrivateKeyPEM: r.GetPrivateKeyPem(),
	}
}

// IssueRequest asks for a key pair and certificate. CommonName defaults
// to the first name; KeyType to ec-p256; TTL to the issuer's default;
// Profile to server.
type IssueRequest struct {
	Issuer      string
	CommonName  string
	DNSNames    []string
	IPAddresses []string
	KeyType     string
	TTL         time.Duration
	Profile     string
}

// Issue generates a key and a certificate for it.
func (c *Client) Issue(ctx context.Context, mount string, r IssueRequest) (Issued, error) {
	resp, err := c.ca.Issue(ctx, &mcv1.IssueRequest{
		Mount: mount, Issuer: r.Issuer, CommonName: r.CommonName, DnsNames: r.DNSNames, IpAddresses: r.IPAddresses,
		KeyType: r.KeyType, Ttl: FormatDuration(r.TTL), Profile: r.Profile,
	})
	if err != nil {
		return Issued{}, c.conn.Err(err)
	}
	return issuedOf(resp), nil
}

// SignCSR signs a PEM certificate request.
func (c *Client) SignCSR(ctx context.Context, mount, issuer, csrPEM string, ttl time.Duration, profile string) (Issued, error) {
	resp, err := c.ca.SignCSR(ctx, &mcv1.SignCSRRequest{Mount: mount, Issuer: issuer, CsrPem: csrPEM, Ttl: FormatDuration(ttl), Profile: profile})
	if err != nil {
		return Issued{}, c.conn.Err(err)
	}
	return issuedOf(resp), nil
}

// Renew issues a new certificate for the same key and names.
func (c *Client) Renew(ctx context.Context, mount, serial string, ttl time.Duration) (Issued, error) {
	resp, err := c.ca.Renew(ctx, &mcv1.RenewRequest{Mount: mount, Serial: serial, Ttl: FormatDuration(ttl)})
	if err != nil {
		return Issued{}, c.conn.Err(err)
	}
	return issuedOf(resp), nil
}

// Revoke revokes a certificate (reason "" is unspecified).
func (c *Client) Revoke(ctx context.Context, mount, serial, reason string) (Certificate, error) {
	resp, err := c.ca.Revoke(ctx, &mcv1.RevokeRequest{Mount: mount, Serial: serial, Reason: reason})
	if err != nil {
		return Certificate{}, c.conn.Err(err)
	}
	return certOf(resp.GetCertificate()), nil
}

// Certificate returns one certificate.
func (c *Client) Certificate(ctx context.Context, mount, serial string) (Certificate, error) {
	resp, err := c.ca.GetCertificate(ctx, &mcv1.GetCertificateRequest{Mount: mount, Serial: serial})
	if err != nil {
		return Certificate{}, c.conn.Err(err)
	}
	return certOf(resp.GetCertificate()), nil
}

// Filter selects certificates; zero fields match everything.
type Filter struct {
	Issuer, Name, RequestedBy string
	// Status is valid, revoked or expired.
	Status         string
	ExpiringWithin time.Duration
	Limit          int
}

// Certificates searches the issued certificates, soonest expiry first.
func (c *Client) Certificates(ctx context.Context, mount string, f Filter) ([]Certificate, error) {
	resp, err := c.ca.ListCertificates(ctx, &mcv1.ListCertificatesRequest{
		Mount: mount, Issuer: f.Issuer, Name: f.Name, RequestedBy: f.RequestedBy, Status: f.Status,
		ExpiringWithin: FormatDuration(f.ExpiringWithin), Limit: int32(f.Limit), //nolint:gosec // bounded by the server
	})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Certificate, 0, len(resp.GetCertificates()))
	for _, cert := range resp.GetCertificates() {
		out = append(out, certOf(cert))
	}
	return out, nil
}

// CRL is an issuer's current CRL.
type CRL struct {
	Issuer     string    `json:"issuer"`
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Revoked    []string  `json:"revoked"`
	PEM        string    `json:"crl_pem"`
}

func crlOf(r *mcv1.GetCRLResponse) CRL {
	return CRL{
		Issuer: r.GetIssuer(), Number: r.GetNumber(), ThisUpdate: r.GetThisUpdate().AsTime(),
		NextUpdate: r.GetNextUpdate().AsTime(), Revoked: r.GetRevoked(), PEM: r.GetCrlPem(),
	}
}

// CRL returns an issuer's current CRL ("root" for the root's).
func (c *Client) CRL(ctx context.Context, mount, issuer string) (CRL, error) {
	resp, err := c.ca.GetCRL(ctx, &mcv1.GetCRLRequest{Mount: mount, Issuer: issuer})
	if err != nil {
		return CRL{}, c.conn.Err(err)
	}
	return crlOf(resp), nil
}

// RebuildCRL signs a fresh CRL for an issuer now.
func (c *Client) RebuildCRL(ctx context.Context, mount, issuer string) (CRL, error) {
	resp, err := c.ca.RebuildCRL(ctx, &mcv1.RebuildCRLRequest{Mount: mount, Issuer: issuer})
	if err != nil {
		return CRL{}, c.conn.Err(err)
	}
	return crlOf(resp), nil
}
