package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// IssueRequest asks for a key pair and a certificate.
type IssueRequest struct {
	Issuer      string   `json:"issuer"`
	CommonName  string   `json:"common_name"`
	DNSNames    []string `json:"dns_names"`
	IPAddresses []string `json:"ip_addresses"`
	KeyType     string   `json:"key_type"`
	TTL         string   `json:"ttl"`
	Profile     string   `json:"profile"`
}

// SignRequest asks for a CSR to be signed.
type SignRequest struct {
	Issuer  string `json:"issuer"`
	CSRPEM  string `json:"csr_pem"`
	TTL     string `json:"ttl"`
	Profile string `json:"profile"`
}

// RenewRequest asks for a certificate to be renewed.
type RenewRequest struct {
	Serial string `json:"serial"`
	TTL    string `json:"ttl"`
}

// leaf is what a leaf certificate is made from.
type leaf struct {
	cn          string
	names       pki.Names
	pub         crypto.PublicKey
	ttl         time.Duration
	profile     pki.Profile
	renewedFrom string
	// keyField names the input the key came from, for errors.
	keyField string
}

// Issue generates a key of the requested type and issues a certificate
// for it. The private key is in the result, once; it is never stored.
func (s *Service) Issue(ctx context.Context, c engine.Caller, mount string, r IssueRequest) (pki.Issued, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.Issued{}, err
	}
	if err := pki.ValidateIssuerName("issuer", r.Issuer); err != nil {
		return pki.Issued{}, err
	}
	pol, err := s.decide(ctx, c, m, policy.OpIssue, "issuer/"+r.Issuer)
	if err != nil {
		return pki.Issued{}, err
	}
	n, cn, err := leafNames(r.CommonName, r.DNSNames, r.IPAddresses)
	if err != nil {
		return pki.Issued{}, err
	}
	kt, err := pki.ParseKeyType("key_type", r.KeyType)
	if err != nil {
		return pki.Issued{}, err
	}
	ttl, err := pki.ParseDuration("ttl", r.TTL)
	if err != nil {
		return pki.Issued{}, err
	}
	profile, err := pki.ParseProfile("profile", r.Profile)
	if err != nil {
		return pki.Issued{}, err
	}
	iss, err := s.checkLeaf(ctx, pol, m, r.Issuer, n, kt, ttl, profile, "key_type")
	if err != nil {
		return pki.Issued{}, err
	}
	key, err := kt.Generate()
	if err != nil {
		return pki.Issued{}, err
	}
	out, err := s.sign(ctx, c, m, iss, leaf{cn: cn, names: n, pub: key.Public(), ttl: ttl, profile: profile})
	if err != nil {
		return pki.Issued{}, err
	}
	if out.PrivateKeyPEM, err = pki.MarshalPrivateKeyPEM(key); err != nil {
		return pki.Issued{}, err
	}
	return out, nil
}

// SignPEM signs a PEM CSR (the typed API's form of SignCSR).
func (s *Service) SignPEM(ctx context.Context, c engine.Caller, mount string, r SignRequest) (pki.Issued, error) {
	if _, err := s.mount(ctx, mount); err != nil {
		return pki.Issued{}, err
	}
	if err := pki.ValidateIssuerName("issuer", r.Issuer); err != nil {
		return pki.Issued{}, err
	}
	ttl, err := pki.ParseDuration("ttl", r.TTL)
	if err != nil {
		return pki.Issued{}, err
	}
	profile, err := pki.ParseProfile("profile", r.Profile)
	if err != nil {
		return pki.Issued{}, err
	}
	csr, err := ParseCSR("csr_pem", r.CSRPEM)
	if err != nil {
		return pki.Issued{}, err
	}
	return s.SignCSR(ctx, c, mount, r.Issuer, csr, pki.SignOptions{TTL: ttl, Profile: profile})
}

// SignCSR implements pki.Issuer: the CSR's signature is checked, its
// names go through the caller's limits, and its key type must be one the
// issuer signs. Only its names and key are used.
func (s *Service) SignCSR(ctx context.Context, c engine.Caller, mount, issuer string, csr *x509.CertificateRequest, o pki.SignOptions) (pki.Issued, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.Issued{}, err
	}
	if err := pki.ValidateIssuerName("issuer", issuer); err != nil {
		return pki.Issued{}, err
	}
	pol, err := s.decide(ctx, c, m, policy.OpSign, "issuer/"+issuer)
	if err != nil {
		return pki.Issued{}, err
	}
	n, cn, err := csrNames(csr)
	if err != nil {
		return pki.Issued{}, err
	}
	kt, err := pki.KeyTypeOf(csr.PublicKey)
	if err != nil {
		return pki.Issued{}, apierr.InvalidField("csr_pem", "%v", err)
	}
	if o.Profile == "" {
		o.Profile = pki.Server
	}
	iss, err := s.checkLeaf(ctx, pol, m, issuer, n, kt, o.TTL, o.Profile, "csr_pem")
	if err != nil {
		return pki.Issued{}, err
	}
	return s.sign(ctx, c, m, iss, leaf{cn: cn, names: n, pub: csr.PublicKey, ttl: o.TTL, profile: o.Profile})
}

// Authorize implements pki.Issuer: "sign" on the issuer and every name
// within the caller's limits, without issuing.
func (s *Service) Authorize(ctx context.Context, c engine.Caller, mount, issuer string, n pki.Names) error {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return err
	}
	if err := pki.ValidateIssuerName("issuer", issuer); err != nil {
		return err
	}
	pol, err := s.decide(ctx, c, m, policy.OpSign, "issuer/"+issuer)
	if err != nil {
		return err
	}
	ips := make([]string, len(n.IPs))
	for i, a := range n.IPs {
		ips[i] = a.String()
	}
	norm, _, err := leafNames("", n.DNS, ips)
	if err != nil {
		return err
	}
	return pol.CheckNames(m.Name, norm)
}

// Renew issues a new certificate for the key, names, profile and issuer
// of an existing unrevoked one; the names are checked against the
// caller's limits as they are now.
func (s *Service) Renew(ctx context.Context, c engine.Caller, mount string, r RenewRequest) (pki.Issued, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.Issued{}, err
	}
	serial, err := pki.ParseSerial("serial", r.Serial)
	if err != nil {
		return pki.Issued{}, err
	}
	ttl, err := pki.ParseDuration("ttl", r.TTL)
	if err != nil {
		return pki.Issued{}, err
	}
	old, err := s.d.Store.Certificate(ctx, m.ID, m.Name, serial)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			// Whether a serial exists is not told to who may not read.
			if aerr := s.authorize(ctx, c, m, policy.OpRead, "certs"); aerr != nil {
				return pki.Issued{}, aerr
			}
		}
		return pki.Issued{}, err
	}
	pol, err := s.decide(ctx, c, m, policy.OpRenew, "issuer/"+old.Issuer)
	if err != nil {
		return pki.Issued{}, err
	}
	if old.RevokedAt != nil {
		return pki.Issued{}, wrapf(engine.ErrPrecondition, "certificate %s is revoked", serial)
	}
	if old.Profile == CAProfile {
		return pki.Issued{}, wrapf(engine.ErrPrecondition, "certificate %s is an issuer's; issuers are not renewed", serial)
	}
	cert, err := x509.ParseCertificate(old.DER)
	if err != nil {
		return pki.Issued{}, fmt.Errorf("stored certificate %s: %w", serial, err)
	}
	n := pki.Names{DNS: old.DNSNames, IPs: old.IPs}
	iss, err := s.checkLeaf(ctx, pol, m, old.Issuer, n, old.KeyType, ttl, old.Profile, "serial")
	if err != nil {
		return pki.Issued{}, err
	}
	return s.sign(ctx, c, m, iss, leaf{cn: cert.Subject.CommonName, names: n, pub: cert.PublicKey, ttl: ttl, profile: old.Profile, renewedFrom: serial})
}

// checkLeaf runs the checks every leaf goes through, in order: the names
// against the caller's limits (in pol, the policy as the request read it
// for its rule check), then the issuer's settings (key type, profile, TTL)
// and name constraints. It returns the loaded issuer.
func (s *Service) checkLeaf(ctx context.Context, pol *policy.Snapshot, m engine.Mount, issuer string, n pki.Names, kt pki.KeyType, ttl time.Duration, profile pki.Profile, keyField string) (*loaded, error) {
	if err := pol.CheckNames(m.Name, n); err != nil {
		return nil, err
	}
	iss, err := load(ctx, m.Storage, issuer)
	if err != nil {
		return nil, err
	}
	set := iss.rec.Settings
	if set == nil {
		return nil, fmt.Errorf("issuer %s has no settings", issuer)
	}
	if !slices.Contains(set.KeyTypes, kt) {
		return nil, apierr.InvalidField(keyField, "issuer %s does not sign %s keys (%s)", issuer, kt, joinTypes(set.KeyTypes))
	}
	if !slices.Contains(set.Profiles, profile) {
		return nil, apierr.InvalidField("profile", "issuer %s does not issue %s certificates", issuer, profile)
	}
	if ttl > set.MaxTTL {
		return nil, apierr.InvalidField("ttl", "%s is above issuer %s's max_ttl %s", pki.FormatDuration(ttl), issuer, pki.FormatDuration(set.MaxTTL))
	}
	if err := checkConstraints(issuer, iss.rec.Constraints, n); err != nil {
		return nil, err
	}
	return iss, nil
}

func joinTypes(ks []pki.KeyType) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// checkConstraints refuses names the issuer's certificate would make
// invalid, so the caller gets a clear error rather than a certificate
// that fails verification.
func checkConstraints(issuer string, c pki.Constraints, n pki.Names) error {
	for _, name := range n.DNS {
		if len(c.PermittedDNS) > 0 && !slices.ContainsFunc(c.PermittedDNS, func(d string) bool { return underDomain(name, d) }) {
			return apierr.InvalidField("dns_names", "%s is outside issuer %s's permitted domains (%s)", name, issuer, strings.Join(c.PermittedDNS, ", "))
		}
		if slices.ContainsFunc(c.ExcludedDNS, func(d string) bool { return underDomain(name, d) }) {
			return apierr.InvalidField("dns_names", "%s is in issuer %s's excluded domains", name, issuer)
		}
	}
	for _, ip := range n.IPs {
		if len(c.PermittedIPs) > 0 && !slices.ContainsFunc(c.PermittedIPs, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return apierr.InvalidField("ip_addresses", "%s is outside issuer %s's permitted ranges", ip, issuer)
		}
		if slices.ContainsFunc(c.ExcludedIPs, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return apierr.InvalidField("ip_addresses", "%s is in issuer %s's excluded ranges", ip, issuer)
		}
	}
	return nil
}

// underDomain is RFC 5280's DNS name constraint: "example.net" covers it
// and every name under it, ".example.net" only the names under it. A
// wildcard's "*" is a label like any other.
func underDomain(name, domain string) bool {
	if strings.HasPrefix(domain, ".") {
		return strings.HasSuffix(name, domain)
	}
	return name == domain || strings.HasSuffix(name, "."+domain)
}

// sign makes, records and returns a leaf certificate.
func (s *Service) sign(ctx context.Context, c engine.Caller, m engine.Mount, iss *loaded, l leaf) (pki.Issued, error) {
	set := iss.rec.Settings
	ttl := l.ttl
	if ttl == 0 {
		ttl = set.DefaultTTL
	}
	kt, err := pki.KeyTypeOf(l.pub)
	if err != nil {
		return pki.Issued{}, apierr.InvalidField(l.keyField, "%v", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return pki.Issued{}, err
	}
	ski, err := subjectKeyID(l.pub)
	if err != nil {
		return pki.Issued{}, err
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := l.pub.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	ips := make([]net.IP, len(l.names.IPs))
	for i, a := range l.names.IPs {
		ips[i] = a.AsSlice()
	}
	now := s.now()
	u := s.urlsFor(m.Name, iss.name)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: l.cn},
		DNSNames:              l.names.DNS,
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(now.Add(ttl), iss.cert.NotAfter),
		KeyUsage:              usage,
		ExtKeyUsage:           l.profile.ExtKeyUsage(),
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		CRLDistributionPoints: u.crl,
		OCSPServer:            u.ocsp,
		IssuingCertificateURL: u.issuer,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.cert, l.pub, iss.signer)
	if err != nil {
		return pki.Issued{}, fmt.Errorf("sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return pki.Issued{}, err
	}
	rec := pki.Certificate{
		Mount: m.Name, Serial: pki.FormatSerial(serial), Issuer: iss.name, CommonName: l.cn,
		DNSNames: l.names.DNS, IPs: l.names.IPs, Profile: l.profile, KeyType: kt,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, RequestedBy: c.Username, CreatedAt: now,
		RenewedFrom: l.renewedFrom, DER: der,
	}
	if err := s.d.Store.InsertCertificate(ctx, m.ID, rec); err != nil {
		return pki.Issued{}, err
	}
	root, err := loadCertDER(ctx, m.Storage, pki.RootName)
	if err != nil {
		return pki.Issued{}, err
	}
	s.d.Logger.Info("certificate issued", "mount", m.Name, "issuer", iss.name, "serial", rec.Serial,
		"names", len(l.names.DNS)+len(l.names.IPs), "by", c.Username, "renewed_from", l.renewedFrom)
	return pki.Issued{
		Certificate:    rec,
		CertificatePEM: pki.EncodePEM(der),
		ChainPEM:       pki.EncodePEM(der, iss.cert.Raw),
		CAChainPEM:     pki.EncodePEM(iss.cert.Raw, root),
	}, nil
}
