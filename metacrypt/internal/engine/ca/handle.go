package ca

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// Operations are the generic request's operations on a CA mount, each
// the same as a typed CAService RPC (its data fields named alike).
var Operations = []string{
	"generate-root", "import-root", "create-issuer", "list-issuers", "get-issuer", "update-issuer",
	"issue", "sign", "renew", "revoke", "get", "list", "crl", "rebuild-crl",
}

// Handle implements engine.Engine: one generic request, decoded into the
// typed request and answered by the same method as the typed API, so the
// two cannot differ in what they allow.
func (s *Service) Handle(ctx context.Context, r engine.Request) (map[string]any, error) {
	c, mount := r.Caller, r.Mount.Name
	switch r.Operation {
	case "generate-root":
		var in RootRequest
		if err := decode(r, "", &in, nil); err != nil {
			return nil, err
		}
		return view(s.GenerateRoot(ctx, c, mount, in))
	case "import-root":
		var in ImportRequest
		if err := decode(r, "", &in, nil); err != nil {
			return nil, err
		}
		return view(s.ImportRoot(ctx, c, mount, in))
	case "create-issuer":
		var in IssuerRequest
		if err := decode(r, "issuer/", &in, &in.Name); err != nil {
			return nil, err
		}
		return view(s.CreateIssuer(ctx, c, mount, in))
	case "list-issuers":
		if err := decode(r, "", &struct{}{}, nil); err != nil {
			return nil, err
		}
		list, err := s.ListIssuers(ctx, c, mount)
		if err != nil {
			return nil, err
		}
		out := make([]issuerJSON, len(list))
		for i, in := range list {
			out[i] = issuerView(in)
		}
		return toMap(map[string]any{"issuers": out})
	case "get-issuer":
		var in struct {
			Name string `json:"name"`
		}
		if err := decode(r, "issuer/", &in, &in.Name); err != nil {
			return nil, err
		}
		return view(s.GetIssuer(ctx, c, mount, in.Name))
	case "update-issuer":
		var in struct {
			Name string `json:"name"`
			SettingsRequest
		}
		if err := decode(r, "issuer/", &in, &in.Name); err != nil {
			return nil, err
		}
		return view(s.UpdateIssuer(ctx, c, mount, in.Name, in.SettingsRequest))
	case "issue":
		var in IssueRequest
		if err := decode(r, "issuer/", &in, &in.Issuer); err != nil {
			return nil, err
		}
		return view(s.Issue(ctx, c, mount, in))
	case "sign":
		var in SignRequest
		if err := decode(r, "issuer/", &in, &in.Issuer); err != nil {
			return nil, err
		}
		return view(s.SignPEM(ctx, c, mount, in))
	case "renew":
		var in RenewRequest
		if err := decode(r, "cert/", &in, &in.Serial); err != nil {
			return nil, err
		}
		return view(s.Renew(ctx, c, mount, in))
	case "revoke":
		var in RevokeRequest
		if err := decode(r, "cert/", &in, &in.Serial); err != nil {
			return nil, err
		}
		cert, err := s.RevokeCert(ctx, c, mount, in)
		if err != nil {
			return nil, err
		}
		return toMap(map[string]any{"certificate": certView(cert)})
	case "get":
		var in struct {
			Serial string `json:"serial"`
		}
		if err := decode(r, "cert/", &in, &in.Serial); err != nil {
			return nil, err
		}
		cert, err := s.GetCertificate(ctx, c, mount, in.Serial)
		if err != nil {
			return nil, err
		}
		return toMap(map[string]any{"certificate": certView(cert)})
	case "list":
		var in ListRequest
		if err := decode(r, "", &in, nil); err != nil {
			return nil, err
		}
		list, err := s.ListCertificates(ctx, c, mount, in)
		if err != nil {
			return nil, err
		}
		out := make([]certJSON, len(list))
		for i, cert := range list {
			out[i] = certView(cert)
		}
		return toMap(map[string]any{"certificates": out})
	case "crl", "rebuild-crl":
		var in struct {
			Issuer string `json:"issuer"`
		}
		if err := decode(r, "issuer/", &in, &in.Issuer); err != nil {
			return nil, err
		}
		if r.Operation == "crl" {
			return view(s.GetCRL(ctx, c, mount, in.Issuer))
		}
		return view(s.RebuildCRL(ctx, c, mount, in.Issuer))
	}
	return nil, apierr.InvalidField("operation", "unknown operation %q for a CA mount (%s)", r.Operation, strings.Join(Operations, ", "))
}

// decode reads the request's data into dst strictly (unknown fields are
// errors, as on the typed API). When the operation has a resource
// (prefix "issuer/" or "cert/"), the request's path may name it instead
// of the data field target; both naming different things is an error.
func decode(r engine.Request, prefix string, dst any, target *string) error {
	b, err := json.Marshal(r.Data)
	if err != nil {
		return apierr.InvalidField("data", "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return apierr.InvalidField("data", "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if r.Path == "" {
		return nil
	}
	if target == nil || !strings.HasPrefix(r.Path, prefix) || len(r.Path) == len(prefix) {
		if target == nil {
			return apierr.InvalidField("path", "operation %s takes no path", r.Operation)
		}
		return apierr.InvalidField("path", "want %s<name>, got %q", prefix, r.Path)
	}
	v := strings.TrimPrefix(r.Path, prefix)
	if *target != "" && *target != v {
		return apierr.InvalidField("path", "names %q but data names %q", v, *target)
	}
	*target = v
	return nil
}

// view turns a typed result into the generic response's data.
func view[T any](v T, err error) (map[string]any, error) {
	if err != nil {
		return nil, err
	}
	switch x := any(v).(type) {
	case pki.IssuerInfo:
		return toMap(map[string]any{"issuer": issuerView(x)})
	case pki.Issued:
		return toMap(issuedJSON{
			Certificate: certView(x.Certificate), CertificatePEM: x.CertificatePEM, ChainPEM: x.ChainPEM,
			CAChainPEM: x.CAChainPEM, PrivateKeyPEM: x.PrivateKeyPEM,
		})
	case pki.CRLInfo:
		return toMap(crlJSON{Issuer: x.Issuer, Number: x.Number, ThisUpdate: x.ThisUpdate, NextUpdate: x.NextUpdate,
			Revoked: x.Revoked, CRLPEM: pki.EncodeCRL(x.DER)})
	}
	return nil, fmt.Errorf("no generic view of %T", v)
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

// The generic response's shapes, named as the typed API's JSON.

type issuerJSON struct {
	Name                string   `json:"name"`
	IsRoot              bool     `json:"is_root"`
	Subject             string   `json:"subject"`
	Serial              string   `json:"serial"`
	KeyType             string   `json:"key_type"`
	NotBefore           string   `json:"not_before"`
	NotAfter            string   `json:"not_after"`
	CertificatePEM      string   `json:"certificate_pem"`
	ChainPEM            string   `json:"chain_pem"`
	MaxTTL              string   `json:"max_ttl"`
	DefaultTTL          string   `json:"default_ttl"`
	KeyTypes            []string `json:"key_types"`
	Profiles            []string `json:"profiles"`
	PermittedDNSDomains []string `json:"permitted_dns_domains"`
	ExcludedDNSDomains  []string `json:"excluded_dns_domains"`
	PermittedIPRanges   []string `json:"permitted_ip_ranges"`
	ExcludedIPRanges    []string `json:"excluded_ip_ranges"`
}

type certJSON struct {
	Serial           string   `json:"serial"`
	Issuer           string   `json:"issuer"`
	CommonName       string   `json:"common_name"`
	DNSNames         []string `json:"dns_names"`
	IPAddresses      []string `json:"ip_addresses"`
	Profile          string   `json:"profile"`
	KeyType          string   `json:"key_type"`
	NotBefore        string   `json:"not_before"`
	NotAfter         string   `json:"not_after"`
	RequestedBy      string   `json:"requested_by"`
	CreatedAt        string   `json:"created_at"`
	Revoked          bool     `json:"revoked"`
	RevokedAt        string   `json:"revoked_at,omitempty"`
	RevocationReason string   `json:"revocation_reason,omitempty"`
	RenewedFrom      string   `json:"renewed_from"`
	CertificatePEM   string   `json:"certificate_pem"`
}

type issuedJSON struct {
	Certificate    certJSON `json:"certificate"`
	CertificatePEM string   `json:"certificate_pem"`
	ChainPEM       string   `json:"chain_pem"`
	CAChainPEM     string   `json:"ca_chain_pem"`
	PrivateKeyPEM  string   `json:"private_key_pem"`
}

type crlJSON struct {
	Issuer     string    `json:"issuer"`
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Revoked    []string  `json:"revoked"`
	CRLPEM     string    `json:"crl_pem"`
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// IssuerStrings are an issuer's list fields as strings (shared with the
// gRPC view).
func IssuerStrings(in pki.IssuerInfo) (keyTypes, profiles, permDNS, exclDNS, permIP, exclIP []string) {
	for _, k := range in.Settings.KeyTypes {
		keyTypes = append(keyTypes, string(k))
	}
	for _, p := range in.Settings.Profiles {
		profiles = append(profiles, string(p))
	}
	for _, p := range in.PermittedIPs {
		permIP = append(permIP, p.String())
	}
	for _, p := range in.ExcludedIPs {
		exclIP = append(exclIP, p.String())
	}
	return keyTypes, profiles, in.PermittedDNS, in.ExcludedDNS, permIP, exclIP
}

func issuerView(in pki.IssuerInfo) issuerJSON {
	kt, pr, pd, ed, pi, ei := IssuerStrings(in)
	chain := pki.EncodePEM(in.Cert.Raw)
	if !in.IsRoot && in.Root != nil {
		chain = pki.EncodePEM(in.Cert.Raw, in.Root.Raw)
	}
	return issuerJSON{
		Name: in.Name, IsRoot: in.IsRoot, Subject: in.Cert.Subject.String(), Serial: pki.FormatSerial(in.Cert.SerialNumber),
		KeyType: string(in.KeyType), NotBefore: ts(in.Cert.NotBefore), NotAfter: ts(in.Cert.NotAfter),
		CertificatePEM: pki.EncodePEM(in.Cert.Raw), ChainPEM: chain,
		MaxTTL: pki.FormatDuration(in.Settings.MaxTTL), DefaultTTL: pki.FormatDuration(in.Settings.DefaultTTL),
		KeyTypes: kt, Profiles: pr, PermittedDNSDomains: pd, ExcludedDNSDomains: ed, PermittedIPRanges: pi, ExcludedIPRanges: ei,
	}
}

func certView(c pki.Certificate) certJSON {
	ips := make([]string, len(c.IPs))
	for i, a := range c.IPs {
		ips[i] = a.String()
	}
	out := certJSON{
		Serial: c.Serial, Issuer: c.Issuer, CommonName: c.CommonName, DNSNames: c.DNSNames, IPAddresses: ips,
		Profile: string(c.Profile), KeyType: string(c.KeyType), NotBefore: ts(c.NotBefore), NotAfter: ts(c.NotAfter),
		RequestedBy: c.RequestedBy, CreatedAt: ts(c.CreatedAt), RenewedFrom: c.RenewedFrom, CertificatePEM: c.PEM(),
	}
	if c.RevokedAt != nil {
		out.Revoked, out.RevokedAt, out.RevocationReason = true, ts(*c.RevokedAt), c.Reason.String()
	}
	return out
}
