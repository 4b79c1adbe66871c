package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// Profile is what a leaf certificate is for.
type Profile string

// The profiles.
const (
	Server Profile = "server"
	Client Profile = "client"
	Both   Profile = "both"
)

// Profiles lists every profile.
var Profiles = []Profile{Server, Client, Both}

// ParseProfile parses a profile; empty is server.
func ParseProfile(field, s string) (Profile, error) {
	if s == "" {
		return Server, nil
	}
	p := Profile(strings.ToLower(s))
	if !slices.Contains(Profiles, p) {
		return "", apierr.InvalidField(field, "unknown profile %q (server, client, both)", s)
	}
	return p, nil
}

// ExtKeyUsage is the profile's extended key usages.
func (p Profile) ExtKeyUsage() []x509.ExtKeyUsage {
	switch p {
	case Client:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case Both:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
}

// Reason is an RFC 5280 CRL reason code.
type Reason int

// The reasons a leaf may be revoked for (certificateHold and the CA/AA
// compromise codes are not offered).
const (
	Unspecified          Reason = 0
	KeyCompromise        Reason = 1
	AffiliationChanged   Reason = 3
	Superseded           Reason = 4
	CessationOfOperation Reason = 5
	PrivilegeWithdrawn   Reason = 9
)

var reasonNames = map[Reason]string{
	Unspecified: "unspecified", KeyCompromise: "key-compromise", AffiliationChanged: "affiliation-changed",
	Superseded: "superseded", CessationOfOperation: "cessation-of-operation", PrivilegeWithdrawn: "privilege-withdrawn",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "reason-" + strconv.Itoa(int(r))
}

// ParseReason parses a reason name ("key-compromise", also
// "keyCompromise" and "key_compromise") or its RFC 5280 number; empty is
// unspecified.
func ParseReason(field, s string) (Reason, error) {
	if s == "" {
		return Unspecified, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if _, ok := reasonNames[Reason(n)]; ok {
			return Reason(n), nil
		}
	}
	norm := strings.ToLower(strings.NewReplacer("-", "", "_", "", " ", "").Replace(s))
	for r, name := range reasonNames {
		if strings.ReplaceAll(name, "-", "") == norm {
			return r, nil
		}
	}
	return 0, apierr.InvalidField(field, "unknown reason %q (unspecified, key-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn)", s)
}

// ParseDuration parses a duration in Go syntax with a day unit added
// ("90d", "720h", "1d12h"); it must be positive.
func ParseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	rest, total := s, time.Duration(0)
	if i := strings.Index(rest, "d"); i > 0 {
		days, err := strconv.Atoi(rest[:i])
		if err != nil || days < 0 || days > 100*366 {
			return 0, apierr.InvalidField(field, "%q is not a duration like 90d or 720h", s)
		}
		total, rest = time.Duration(days)*24*time.Hour, rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, apierr.InvalidField(field, "%q is not a duration like 90d or 720h", s)
		}
		total += d
	}
	if total <= 0 {
		return 0, apierr.InvalidField(field, "%q must be positive", s)
	}
	return total, nil
}

// FormatDuration writes a duration as ParseDuration reads it: whole days
// as "90d", anything else in Go syntax.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

var issuerNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// RootName is the name the root goes by among the issuers.
const RootName = "root"

// ValidateIssuerName checks an intermediate issuer's name.
func ValidateIssuerName(field, name string) error {
	if !issuerNameRE.MatchString(name) {
		return apierr.InvalidField(field, "%q is not a valid issuer name (lower-case letters, digits and hyphens, 1-63 characters)", name)
	}
	if name == RootName {
		return apierr.InvalidField(field, "%q is reserved for the root", name)
	}
	return nil
}

// FormatSerial is a serial number as Metacrypt writes it: lower-case hex
// without separators.
func FormatSerial(n *big.Int) string { return n.Text(16) }

// ParseSerial reads a serial in hex, with or without colons, in any case
// ("3f:1a", "3F1A", "0x3f1a").
func ParseSerial(field, s string) (string, error) {
	t := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	t = strings.TrimPrefix(t, "0x")
	n, ok := new(big.Int).SetString(t, 16)
	if t == "" || !ok || n.Sign() <= 0 || n.BitLen() > 160 {
		return "", apierr.InvalidField(field, "%q is not a certificate serial number (hex)", s)
	}
	return FormatSerial(n), nil
}

// Status is a certificate's state.
type Status string

// The states.
const (
	Valid   Status = "valid"
	Revoked Status = "revoked"
	Expired Status = "expired"
)

// IssuerSettings are an issuer's changeable settings.
type IssuerSettings struct {
	MaxTTL     time.Duration `json:"max_ttl"`
	DefaultTTL time.Duration `json:"default_ttl"`
	KeyTypes   []KeyType     `json:"key_types"`
	Profiles   []Profile     `json:"profiles"`
}

// Constraints are the X.509 name constraints of an issuer's certificate.
type Constraints struct {
	PermittedDNS []string       `json:"permitted_dns_domains,omitempty"`
	ExcludedDNS  []string       `json:"excluded_dns_domains,omitempty"`
	PermittedIPs []netip.Prefix `json:"permitted_ip_ranges,omitempty"`
	ExcludedIPs  []netip.Prefix `json:"excluded_ip_ranges,omitempty"`
}

// IssuerInfo describes the root or an intermediate issuer.
type IssuerInfo struct {
	Name     string
	IsRoot   bool
	KeyType  KeyType
	Cert     *x509.Certificate
	Root     *x509.Certificate
	Settings IssuerSettings
	Constraints
}

// Certificate is an issued certificate as recorded (public material).
type Certificate struct {
	Mount       string
	Serial      string
	Issuer      string
	CommonName  string
	DNSNames    []string
	IPs         []netip.Addr
	Profile     Profile
	KeyType     KeyType
	NotBefore   time.Time
	NotAfter    time.Time
	RequestedBy string
	CreatedAt   time.Time
	RevokedAt   *time.Time
	Reason      Reason
	RenewedFrom string
	DER         []byte
}

// PEM is the certificate in PEM.
func (c Certificate) PEM() string { return EncodePEM(c.DER) }

// EncodePEM encodes DER certificates as one PEM bundle.
func EncodePEM(ders ...[]byte) string {
	var b strings.Builder
	for _, d := range ders {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d}))
	}
	return b.String()
}

// Issued is a certificate just issued: the record, its PEM, the full
// chain (leaf then issuer) a server presents, the CA chain (issuer then
// root), and for Issue only the private key, returned once.
type Issued struct {
	Certificate    Certificate
	CertificatePEM string
	ChainPEM       string
	CAChainPEM     string
	PrivateKeyPEM  string
}

// Filter selects certificates in a listing.
type Filter struct {
	Issuer      string
	Name        string
	RequestedBy string
	Status      Status
	// ExpiringWithin keeps unrevoked certificates with not_after in
	// (now, now+ExpiringWithin].
	ExpiringWithin time.Duration
	Limit          int
	Now            time.Time
}

// CRLInfo is an issuer's current CRL.
type CRLInfo struct {
	Issuer     string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	Revoked    []string
	DER        []byte
}

// ParseIPs parses IP address SANs; field names the input in errors.
func ParseIPs(field string, in []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(in))
	for i, s := range in {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			return nil, apierr.InvalidField(fmt.Sprintf("%s[%d]", field, i), "%q is not an IP address", s)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

// EncodeCRL is a DER CRL in PEM.
func EncodeCRL(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}
