package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// IssuerRequest asks for a new intermediate issuer.
type IssuerRequest struct {
	Name                string   `json:"name"`
	CommonName          string   `json:"common_name"`
	KeyType             string   `json:"key_type"`
	TTL                 string   `json:"ttl"`
	MaxTTL              string   `json:"max_ttl"`
	DefaultTTL          string   `json:"default_ttl"`
	KeyTypes            []string `json:"key_types"`
	Profiles            []string `json:"profiles"`
	PermittedDNSDomains []string `json:"permitted_dns_domains"`
	ExcludedDNSDomains  []string `json:"excluded_dns_domains"`
	PermittedIPRanges   []string `json:"permitted_ip_ranges"`
	ExcludedIPRanges    []string `json:"excluded_ip_ranges"`
}

// SettingsRequest changes an issuer's settings; empty fields keep the
// current value.
type SettingsRequest struct {
	MaxTTL     string   `json:"max_ttl"`
	DefaultTTL string   `json:"default_ttl"`
	KeyTypes   []string `json:"key_types"`
	Profiles   []string `json:"profiles"`
}

// The defaults of a new issuer.
const (
	DefaultIssuerTTL  = 1826 * 24 * time.Hour
	DefaultMaxTTL     = 90 * 24 * time.Hour
	DefaultDefaultTTL = 30 * 24 * time.Hour
)

// CAProfile is the profile recorded for an issuer's own certificate.
const CAProfile pki.Profile = "ca"

// CreateIssuer creates an intermediate issuer signed by the root (path
// length 0, so it signs leaves only), with its name constraints.
func (s *Service) CreateIssuer(ctx context.Context, c engine.Caller, mount string, r IssuerRequest) (pki.IssuerInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := pki.ValidateIssuerName("name", r.Name); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, "issuer/"+r.Name); err != nil {
		return pki.IssuerInfo{}, err
	}
	kt, err := pki.ParseCAKeyType("key_type", r.KeyType)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	ttl, err := pki.ParseDuration("ttl", r.TTL)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if ttl == 0 {
		ttl = DefaultIssuerTTL
	}
	settings, err := parseSettings(SettingsRequest{MaxTTL: r.MaxTTL, DefaultTTL: r.DefaultTTL, KeyTypes: r.KeyTypes, Profiles: r.Profiles}, nil)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	cons, err := parseConstraints(r)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	cn := r.CommonName
	if cn == "" {
		cn = "Metacircular " + r.Name + " CA"
	}
	if err := checkSubjectField("common_name", cn); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.refuseExisting(ctx, m, r.Name); err != nil {
		return pki.IssuerInfo{}, err
	}
	root, err := load(ctx, m.Storage, pki.RootName)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	key, err := kt.Generate()
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	now := s.now()
	u := s.urlsFor(m.Name, pki.RootName)
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: cn, Organization: root.cert.Subject.Organization},
		NotBefore:                   now.Add(-backdate),
		NotAfter:                    minTime(now.Add(ttl), root.cert.NotAfter),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		SubjectKeyId:                ski,
		CRLDistributionPoints:       u.crl,
		IssuingCertificateURL:       u.issuer,
		PermittedDNSDomainsCritical: !constraintsEmpty(cons),
		PermittedDNSDomains:         cons.PermittedDNS,
		ExcludedDNSDomains:          cons.ExcludedDNS,
		PermittedIPRanges:           ipNets(cons.PermittedIPs),
		ExcludedIPRanges:            ipNets(cons.ExcludedIPs),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, key.Public(), root.signer)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	rec, err := newRecord(kt, key, der, now)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	rec.Settings, rec.Constraints = &settings, cons
	if err := putRecord(ctx, m.Storage, r.Name, rec); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.d.Store.PutCACert(ctx, m.ID, r.Name, der); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.d.Store.InsertCertificate(ctx, m.ID, pki.Certificate{
		Serial: pki.FormatSerial(serial), Issuer: pki.RootName, CommonName: cn, Profile: CAProfile, KeyType: kt,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, RequestedBy: c.Username, CreatedAt: now, DER: der,
	}); err != nil {
		return pki.IssuerInfo{}, err
	}
	if _, err := s.buildCRL(ctx, m, r.Name); err != nil {
		s.d.Logger.Warn("issuer CRL not built", "mount", m.Name, "issuer", r.Name, "error", err)
	}
	s.d.Logger.Info("issuer created", "mount", m.Name, "issuer", r.Name, "by", c.Username)
	return pki.IssuerInfo{Name: r.Name, KeyType: kt, Cert: cert, Root: root.cert, Settings: settings, Constraints: cons}, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func ipNets(ps []netip.Prefix) []*net.IPNet {
	out := make([]*net.IPNet, 0, len(ps))
	for _, p := range ps {
		bits := 32
		if p.Addr().Is6() {
			bits = 128
		}
		out = append(out, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)})
	}
	return out
}

func constraintsEmpty(c pki.Constraints) bool {
	return len(c.PermittedDNS)+len(c.ExcludedDNS)+len(c.PermittedIPs)+len(c.ExcludedIPs) == 0
}

// parseSettings validates settings, starting from cur (nil: the
// defaults of a new issuer).
func parseSettings(r SettingsRequest, cur *pki.IssuerSettings) (pki.IssuerSettings, error) {
	out := pki.IssuerSettings{MaxTTL: DefaultMaxTTL, KeyTypes: pki.KeyTypes, Profiles: pki.Profiles}
	if cur != nil {
		out = *cur
	}
	maxTTL, err := pki.ParseDuration("max_ttl", r.MaxTTL)
	if err != nil {
		return out, err
	}
	if maxTTL > 0 {
		out.MaxTTL = maxTTL
	}
	def, err := pki.ParseDuration("default_ttl", r.DefaultTTL)
	if err != nil {
		return out, err
	}
	switch {
	case def > 0:
		out.DefaultTTL = def
	case cur == nil:
		out.DefaultTTL = min(DefaultDefaultTTL, out.MaxTTL)
	}
	if out.DefaultTTL > out.MaxTTL {
		return out, apierr.InvalidField("default_ttl", "%s is above max_ttl %s", pki.FormatDuration(out.DefaultTTL), pki.FormatDuration(out.MaxTTL))
	}
	if len(r.KeyTypes) > 0 {
		out.KeyTypes = nil
		for i, k := range r.KeyTypes {
			kt, err := pki.ParseKeyType(fmt.Sprintf("key_types[%d]", i), k)
			if err != nil {
				return out, err
			}
			if !slices.Contains(out.KeyTypes, kt) {
				out.KeyTypes = append(out.KeyTypes, kt)
			}
		}
	}
	if len(r.Profiles) > 0 {
		out.Profiles = nil
		for i, p := range r.Profiles {
			pr, err := pki.ParseProfile(fmt.Sprintf("profiles[%d]", i), p)
			if err != nil {
				return out, err
			}
			if !slices.Contains(out.Profiles, pr) {
				out.Profiles = append(out.Profiles, pr)
			}
		}
	}
	return out, nil
}

// parseConstraints validates the name constraints of a new issuer. A DNS
// constraint is a domain ("example.net": it and every name under it) or,
// with a leading dot, only the names under it.
func parseConstraints(r IssuerRequest) (pki.Constraints, error) {
	var c pki.Constraints
	dns := func(field string, in []string) ([]string, error) {
		out := make([]string, 0, len(in))
		for i, d := range in {
			lead := strings.HasPrefix(d, ".")
			n, err := names.ParseDNS(strings.TrimPrefix(d, "."))
			if err != nil || names.IsWildcard(n) {
				return nil, apierr.InvalidField(fmt.Sprintf("%s[%d]", field, i), "%q is not a domain", d)
			}
			if lead {
				n = "." + n
			}
			out = append(out, n)
		}
		return out, nil
	}
	ips := func(field string, in []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(in))
		for i, s := range in {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, apierr.InvalidField(fmt.Sprintf("%s[%d]", field, i), "%q is not a CIDR prefix", s)
			}
			out = append(out, p.Masked())
		}
		return out, nil
	}
	var err error
	if c.PermittedDNS, err = dns("permitted_dns_domains", r.PermittedDNSDomains); err != nil {
		return c, err
	}
	if c.ExcludedDNS, err = dns("excluded_dns_domains", r.ExcludedDNSDomains); err != nil {
		return c, err
	}
	if c.PermittedIPs, err = ips("permitted_ip_ranges", r.PermittedIPRanges); err != nil {
		return c, err
	}
	if c.ExcludedIPs, err = ips("excluded_ip_ranges", r.ExcludedIPRanges); err != nil {
		return c, err
	}
	return c, nil
}

// ListIssuers lists the root (first) and the issuers by name.
func (s *Service) ListIssuers(ctx context.Context, c engine.Caller, mount string) ([]pki.IssuerInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, "issuers"); err != nil {
		return nil, err
	}
	keys, err := m.Storage.List(ctx, storeKind)
	if err != nil {
		return nil, err
	}
	_, rootCert, err := loadRecord(ctx, m.Storage, pki.RootName)
	if err != nil {
		return nil, err
	}
	out := []pki.IssuerInfo{}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == pki.RootName:
			return -1
		case b == pki.RootName:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		rec, cert, err := loadRecord(ctx, m.Storage, k)
		if err != nil {
			return nil, err
		}
		out = append(out, (&loaded{name: k, rec: rec, cert: cert}).info(rootCert))
	}
	return out, nil
}

// GetIssuer describes the root ("root") or an issuer.
func (s *Service) GetIssuer(ctx context.Context, c engine.Caller, mount, name string) (pki.IssuerInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, "issuer/"+name); err != nil {
		return pki.IssuerInfo{}, err
	}
	return s.describe(ctx, m, name)
}

func (s *Service) describe(ctx context.Context, m engine.Mount, name string) (pki.IssuerInfo, error) {
	if name != pki.RootName {
		if err := pki.ValidateIssuerName("name", name); err != nil {
			return pki.IssuerInfo{}, err
		}
	}
	rec, cert, err := loadRecord(ctx, m.Storage, name)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	_, root, err := loadRecord(ctx, m.Storage, pki.RootName)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	return (&loaded{name: name, rec: rec, cert: cert}).info(root), nil
}

// UpdateIssuer changes an issuer's settings (not its certificate).
func (s *Service) UpdateIssuer(ctx context.Context, c engine.Caller, mount, name string, r SettingsRequest) (pki.IssuerInfo, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := pki.ValidateIssuerName("name", name); err != nil {
		return pki.IssuerInfo{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, "issuer/"+name); err != nil {
		return pki.IssuerInfo{}, err
	}
	b, err := m.Storage.Get(ctx, storeKind, name)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			return pki.IssuerInfo{}, wrapf(engine.ErrNotFound, "issuer %s", name)
		}
		return pki.IssuerInfo{}, err
	}
	var rec record
	err = json.Unmarshal(b, &rec)
	clear(b)
	if err != nil {
		return pki.IssuerInfo{}, fmt.Errorf("stored CA record %s: %w", name, err)
	}
	settings, err := parseSettings(r, rec.Settings)
	if err != nil {
		clear(rec.Key)
		return pki.IssuerInfo{}, err
	}
	rec.Settings = &settings
	if err := putRecord(ctx, m.Storage, name, rec); err != nil {
		return pki.IssuerInfo{}, err
	}
	return s.describe(ctx, m, name)
}
