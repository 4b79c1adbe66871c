package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// caGRPC implements mcv1.CAServiceServer.
type caGRPC struct {
	mcv1.UnsafeCAServiceServer
	*app
}

var _ mcv1.CAServiceServer = caGRPC{}

func issuerPB(in pki.IssuerInfo) *mcv1.Issuer {
	kt, pr, pd, ed, pi, ei := ca.IssuerStrings(in)
	chain := pki.EncodePEM(in.Cert.Raw)
	if !in.IsRoot && in.Root != nil {
		chain = pki.EncodePEM(in.Cert.Raw, in.Root.Raw)
	}
	return &mcv1.Issuer{
		Name: in.Name, IsRoot: in.IsRoot, Subject: in.Cert.Subject.String(), Serial: pki.FormatSerial(in.Cert.SerialNumber),
		KeyType: string(in.KeyType), NotBefore: timestamppb.New(in.Cert.NotBefore), NotAfter: timestamppb.New(in.Cert.NotAfter),
		CertificatePem: pki.EncodePEM(in.Cert.Raw), ChainPem: chain,
		MaxTtl: pki.FormatDuration(in.Settings.MaxTTL), DefaultTtl: pki.FormatDuration(in.Settings.DefaultTTL),
		KeyTypes: kt, Profiles: pr, PermittedDnsDomains: pd, ExcludedDnsDomains: ed, PermittedIpRanges: pi, ExcludedIpRanges: ei,
	}
}

func certPB(c pki.Certificate) *mcv1.Certificate {
	ips := make([]string, len(c.IPs))
	for i, a := range c.IPs {
		ips[i] = a.String()
	}
	out := &mcv1.Certificate{
		Serial: c.Serial, Issuer: c.Issuer, CommonName: c.CommonName, DnsNames: c.DNSNames, IpAddresses: ips,
		Profile: string(c.Profile), KeyType: string(c.KeyType), NotBefore: timestamppb.New(c.NotBefore),
		NotAfter: timestamppb.New(c.NotAfter), RequestedBy: c.RequestedBy, CreatedAt: timestamppb.New(c.CreatedAt),
		RenewedFrom: c.RenewedFrom, CertificatePem: c.PEM(),
	}
	if c.RevokedAt != nil {
		out.Revoked, out.RevokedAt, out.RevocationReason = true, timestamppb.New(*c.RevokedAt), c.Reason.String()
	}
	return out
}

func issuedPB(is pki.Issued) *mcv1.IssueResponse {
	return &mcv1.IssueResponse{
		Certificate: certPB(is.Certificate), CertificatePem: is.CertificatePEM, ChainPem: is.ChainPEM,
		CaChainPem: is.CAChainPEM, PrivateKeyPem: is.PrivateKeyPEM,
	}
}

func crlPB(c pki.CRLInfo) *mcv1.GetCRLResponse {
	return &mcv1.GetCRLResponse{
		Issuer: c.Issuer, Number: c.Number, ThisUpdate: timestamppb.New(c.ThisUpdate), NextUpdate: timestamppb.New(c.NextUpdate),
		Revoked: c.Revoked, CrlPem: pki.EncodeCRL(c.DER),
	}
}

// GenerateRoot implements CAService.GenerateRoot.
func (h caGRPC) GenerateRoot(ctx context.Context, req *mcv1.GenerateRootRequest) (*mcv1.GenerateRootResponse, error) {
	in, err := h.ca.GenerateRoot(ctx, caller(ctx), req.GetMount(), ca.RootRequest{
		CommonName: req.GetCommonName(), Organization: req.GetOrganization(), KeyType: req.GetKeyType(), TTL: req.GetTtl(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.GenerateRootResponse{Root: issuerPB(in)}, nil
}

// ImportRoot implements CAService.ImportRoot.
func (h caGRPC) ImportRoot(ctx context.Context, req *mcv1.ImportRootRequest) (*mcv1.ImportRootResponse, error) {
	in, err := h.ca.ImportRoot(ctx, caller(ctx), req.GetMount(), ca.ImportRequest{
		CertificatePEM: req.GetCertificatePem(), PrivateKeyPEM: req.GetPrivateKeyPem(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.ImportRootResponse{Root: issuerPB(in)}, nil
}

// CreateIssuer implements CAService.CreateIssuer.
func (h caGRPC) CreateIssuer(ctx context.Context, req *mcv1.CreateIssuerRequest) (*mcv1.CreateIssuerResponse, error) {
	in, err := h.ca.CreateIssuer(ctx, caller(ctx), req.GetMount(), ca.IssuerRequest{
		Name: req.GetName(), CommonName: req.GetCommonName(), KeyType: req.GetKeyType(), TTL: req.GetTtl(),
		MaxTTL: req.GetMaxTtl(), DefaultTTL: req.GetDefaultTtl(), KeyTypes: req.GetKeyTypes(), Profiles: req.GetProfiles(),
		PermittedDNSDomains: req.GetPermittedDnsDomains(), ExcludedDNSDomains: req.GetExcludedDnsDomains(),
		PermittedIPRanges: req.GetPermittedIpRanges(), ExcludedIPRanges: req.GetExcludedIpRanges(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.CreateIssuerResponse{Issuer: issuerPB(in)}, nil
}

// ListIssuers implements CAService.ListIssuers.
func (h caGRPC) ListIssuers(ctx context.Context, req *mcv1.ListIssuersRequest) (*mcv1.ListIssuersResponse, error) {
	list, err := h.ca.ListIssuers(ctx, caller(ctx), req.GetMount())
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListIssuersResponse{Issuers: make([]*mcv1.Issuer, 0, len(list))}
	for _, in := range list {
		out.Issuers = append(out.Issuers, issuerPB(in))
	}
	return out, nil
}

// GetIssuer implements CAService.GetIssuer.
func (h caGRPC) GetIssuer(ctx context.Context, req *mcv1.GetIssuerRequest) (*mcv1.GetIssuerResponse, error) {
	in, err := h.ca.GetIssuer(ctx, caller(ctx), req.GetMount(), req.GetName())
	if err != nil {
		return nil, err
	}
	return &mcv1.GetIssuerResponse{Issuer: issuerPB(in)}, nil
}

// UpdateIssuer implements CAService.UpdateIssuer.
func (h caGRPC) UpdateIssuer(ctx context.Context, req *mcv1.UpdateIssuerRequest) (*mcv1.UpdateIssuerResponse, error) {
	s := req.GetSettings()
	in, err := h.ca.UpdateIssuer(ctx, caller(ctx), req.GetMount(), req.GetName(), ca.SettingsRequest{
		MaxTTL: s.GetMaxTtl(), DefaultTTL: s.GetDefaultTtl(), KeyTypes: s.GetKeyTypes(), Profiles: s.GetProfiles(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.UpdateIssuerResponse{Issuer: issuerPB(in)}, nil
}

// Issue implements CAService.Issue.
func (h caGRPC) Issue(ctx context.Context, req *mcv1.IssueRequest) (*mcv1.IssueResponse, error) {
	is, err := h.ca.Issue(ctx, caller(ctx), req.GetMount(), ca.IssueRequest{
		Issuer: req.GetIssuer(), CommonName: req.GetCommonName(), DNSNames: req.GetDnsNames(), IPAddresses: req.GetIpAddresses(),
		KeyType: req.GetKeyType(), TTL: req.GetTtl(), Profile: req.GetProfile(),
	})
	if err != nil {
		return nil, err
	}
	return issuedPB(is), nil
}

// SignCSR implements CAService.SignCSR.
func (h caGRPC) SignCSR(ctx context.Context, req *mcv1.SignCSRRequest) (*mcv1.IssueResponse, error) {
	is, err := h.ca.SignPEM(ctx, caller(ctx), req.GetMount(), ca.SignRequest{
		Issuer: req.GetIssuer(), CSRPEM: req.GetCsrPem(), TTL: req.GetTtl(), Profile: req.GetProfile(),
	})
	if err != nil {
		return nil, err
	}
	return issuedPB(is), nil
}

// Renew implements CAService.Renew.
func (h caGRPC) Renew(ctx context.Context, req *mcv1.RenewRequest) (*mcv1.IssueResponse, error) {
	is, err := h.ca.Renew(ctx, caller(ctx), req.GetMount(), ca.RenewRequest{Serial: req.GetSerial(), TTL: req.GetTtl()})
	if err != nil {
		return nil, err
	}
	return issuedPB(is), nil
}

// Revoke implements CAService.Revoke.
func (h caGRPC) Revoke(ctx context.Context, req *mcv1.RevokeRequest) (*mcv1.RevokeResponse, error) {
	c, err := h.ca.RevokeCert(ctx, caller(ctx), req.GetMount(), ca.RevokeRequest{Serial: req.GetSerial(), Reason: req.GetReason()})
	if err != nil {
		return nil, err
	}
	return &mcv1.RevokeResponse{Certificate: certPB(c)}, nil
}

// GetCertificate implements CAService.GetCertificate.
func (h caGRPC) GetCertificate(ctx context.Context, req *mcv1.GetCertificateRequest) (*mcv1.GetCertificateResponse, error) {
	c, err := h.ca.GetCertificate(ctx, caller(ctx), req.GetMount(), req.GetSerial())
	if err != nil {
		return nil, err
	}
	return &mcv1.GetCertificateResponse{Certificate: certPB(c)}, nil
}

// ListCertificates implements CAService.ListCertificates.
func (h caGRPC) ListCertificates(ctx context.Context, req *mcv1.ListCertificatesRequest) (*mcv1.ListCertificatesResponse, error) {
	list, err := h.ca.ListCertificates(ctx, caller(ctx), req.GetMount(), ca.ListRequest{
		Issuer: req.GetIssuer(), Name: req.GetName(), RequestedBy: req.GetRequestedBy(), Status: req.GetStatus(),
		ExpiringWithin: req.GetExpiringWithin(), Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListCertificatesResponse{Certificates: make([]*mcv1.Certificate, 0, len(list))}
	for _, c := range list {
		out.Certificates = append(out.Certificates, certPB(c))
	}
	return out, nil
}

// GetCRL implements CAService.GetCRL.
func (h caGRPC) GetCRL(ctx context.Context, req *mcv1.GetCRLRequest) (*mcv1.GetCRLResponse, error) {
	c, err := h.ca.GetCRL(ctx, caller(ctx), req.GetMount(), req.GetIssuer())
	if err != nil {
		return nil, err
	}
	return crlPB(c), nil
}

// RebuildCRL implements CAService.RebuildCRL.
func (h caGRPC) RebuildCRL(ctx context.Context, req *mcv1.RebuildCRLRequest) (*mcv1.GetCRLResponse, error) {
	c, err := h.ca.RebuildCRL(ctx, caller(ctx), req.GetMount(), req.GetIssuer())
	if err != nil {
		return nil, err
	}
	return crlPB(c), nil
}
