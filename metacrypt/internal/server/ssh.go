package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/sshca"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// sshGRPC implements mcv1.SSHServiceServer over sshca.Service.
type sshGRPC struct {
	mcv1.UnsafeSSHServiceServer
	*app
}

var _ mcv1.SSHServiceServer = sshGRPC{}

func sshCAPB(in sshca.CAInfo) *mcv1.SSHCAResponse {
	return &mcv1.SSHCAResponse{Ca: &mcv1.SSHCA{
		KeyType: string(in.KeyType), PublicKey: in.PublicKey, Fingerprint: in.Fingerprint, CreatedAt: timestamppb.New(in.CreatedAt),
	}}
}

func sshProfilePB(p sshca.Profile) *mcv1.SSHProfile {
	return &mcv1.SSHProfile{
		Name: p.Name, CertType: string(p.CertType), AllowedPrincipals: p.AllowedPrincipals, DefaultPrincipals: p.DefaultPrincipals,
		MaxTtl: pki.FormatDuration(p.MaxTTL), DefaultTtl: pki.FormatDuration(p.DefaultTTL),
		AllowedExtensions: p.AllowedExtensions, DefaultExtensions: p.DefaultExtensions, CriticalOptions: p.CriticalOptions,
		AllowedCriticalOptions: p.AllowedCriticalOptions, KeyTypes: p.KeyTypes, MinRsaBits: int32(p.MinRSABits), //nolint:gosec // at most 16384
		CreatedAt: timestamppb.New(p.CreatedAt), UpdatedAt: timestamppb.New(p.UpdatedAt),
	}
}

func sshCertPB(c sshca.Certificate) *mcv1.SSHCertificate {
	out := &mcv1.SSHCertificate{
		Serial: c.Serial, CertType: string(c.CertType), Profile: c.Profile, KeyId: c.KeyID, Principals: c.Principals,
		ValidAfter: timestamppb.New(c.ValidAfter), ValidBefore: timestamppb.New(c.ValidBefore), Extensions: c.Extensions,
		CriticalOptions: c.CriticalOptions, KeyType: c.KeyType, KeyFingerprint: c.KeyFingerprint, RequestedBy: c.RequestedBy,
		CreatedAt: timestamppb.New(c.CreatedAt), Certificate: c.Certificate,
	}
	if c.RevokedAt != nil {
		out.Revoked, out.RevokedAt = true, timestamppb.New(*c.RevokedAt)
	}
	return out
}

func sshProfileRequest(req *mcv1.SSHProfileRequest) sshca.ProfileRequest {
	return sshca.ProfileRequest{
		Name: req.GetName(), CertType: req.GetCertType(), AllowedPrincipals: req.GetAllowedPrincipals(),
		DefaultPrincipals: req.GetDefaultPrincipals(), MaxTTL: req.GetMaxTtl(), DefaultTTL: req.GetDefaultTtl(),
		AllowedExtensions: req.GetAllowedExtensions(), DefaultExtensions: req.GetDefaultExtensions(),
		CriticalOptions: req.GetCriticalOptions(), AllowedCriticalOptions: req.GetAllowedCriticalOptions(),
		KeyTypes: req.GetKeyTypes(), MinRSABits: int(req.GetMinRsaBits()),
	}
}

// GenerateCA implements SSHService.GenerateCA.
func (h sshGRPC) GenerateCA(ctx context.Context, req *mcv1.GenerateSSHCARequest) (*mcv1.SSHCAResponse, error) {
	in, err := h.ssh.GenerateCA(ctx, caller(ctx), req.GetMount(), sshca.CARequest{KeyType: req.GetKeyType()})
	if err != nil {
		return nil, err
	}
	return sshCAPB(in), nil
}

// GetCA implements SSHService.GetCA.
func (h sshGRPC) GetCA(ctx context.Context, req *mcv1.GetSSHCARequest) (*mcv1.SSHCAResponse, error) {
	in, err := h.ssh.GetCA(ctx, req.GetMount())
	if err != nil {
		return nil, err
	}
	return sshCAPB(in), nil
}

// KRL implements SSHService.KRL.
func (h sshGRPC) KRL(ctx context.Context, req *mcv1.GetSSHKRLRequest) (*mcv1.SSHKRLResponse, error) {
	k, err := h.ssh.KRL(ctx, req.GetMount())
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHKRLResponse{Version: k.Version, GeneratedAt: timestamppb.New(k.GeneratedAt), Krl: k.KRL}, nil
}

// CreateProfile implements SSHService.CreateProfile.
func (h sshGRPC) CreateProfile(ctx context.Context, req *mcv1.SSHProfileRequest) (*mcv1.SSHProfileResponse, error) {
	p, err := h.ssh.CreateProfile(ctx, caller(ctx), req.GetMount(), sshProfileRequest(req))
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHProfileResponse{Profile: sshProfilePB(p)}, nil
}

// UpdateProfile implements SSHService.UpdateProfile.
func (h sshGRPC) UpdateProfile(ctx context.Context, req *mcv1.SSHProfileRequest) (*mcv1.SSHProfileResponse, error) {
	p, err := h.ssh.UpdateProfile(ctx, caller(ctx), req.GetMount(), sshProfileRequest(req))
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHProfileResponse{Profile: sshProfilePB(p)}, nil
}

// DeleteProfile implements SSHService.DeleteProfile.
func (h sshGRPC) DeleteProfile(ctx context.Context, req *mcv1.DeleteSSHProfileRequest) (*mcv1.DeleteSSHProfileResponse, error) {
	if err := h.ssh.DeleteProfile(ctx, caller(ctx), req.GetMount(), req.GetName()); err != nil {
		return nil, err
	}
	return &mcv1.DeleteSSHProfileResponse{}, nil
}

// GetProfile implements SSHService.GetProfile.
func (h sshGRPC) GetProfile(ctx context.Context, req *mcv1.GetSSHProfileRequest) (*mcv1.SSHProfileResponse, error) {
	p, err := h.ssh.GetProfile(ctx, caller(ctx), req.GetMount(), req.GetName())
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHProfileResponse{Profile: sshProfilePB(p)}, nil
}

// ListProfiles implements SSHService.ListProfiles.
func (h sshGRPC) ListProfiles(ctx context.Context, req *mcv1.ListSSHProfilesRequest) (*mcv1.ListSSHProfilesResponse, error) {
	list, err := h.ssh.ListProfiles(ctx, caller(ctx), req.GetMount())
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListSSHProfilesResponse{Profiles: make([]*mcv1.SSHProfile, 0, len(list))}
	for _, p := range list {
		out.Profiles = append(out.Profiles, sshProfilePB(p))
	}
	return out, nil
}

// Sign implements SSHService.Sign.
func (h sshGRPC) Sign(ctx context.Context, req *mcv1.SSHSignRequest) (*mcv1.SSHSignResponse, error) {
	s, err := h.ssh.Sign(ctx, caller(ctx), req.GetMount(), sshca.SignRequest{
		Profile: req.GetProfile(), PublicKey: req.GetPublicKey(), Principals: req.GetPrincipals(), TTL: req.GetTtl(),
		Extensions: req.GetExtensions(), CriticalOptions: req.GetCriticalOptions(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHSignResponse{Certificate: s.Certificate, Record: sshCertPB(s.Record)}, nil
}

// GetCertificate implements SSHService.GetCertificate.
func (h sshGRPC) GetCertificate(ctx context.Context, req *mcv1.GetSSHCertificateRequest) (*mcv1.GetSSHCertificateResponse, error) {
	c, err := h.ssh.GetCertificate(ctx, caller(ctx), req.GetMount(), req.GetSerial())
	if err != nil {
		return nil, err
	}
	return &mcv1.GetSSHCertificateResponse{Certificate: sshCertPB(c)}, nil
}

// ListCertificates implements SSHService.ListCertificates.
func (h sshGRPC) ListCertificates(ctx context.Context, req *mcv1.ListSSHCertificatesRequest) (*mcv1.ListSSHCertificatesResponse, error) {
	list, err := h.ssh.ListCertificates(ctx, caller(ctx), req.GetMount(), sshca.ListRequest{
		Profile: req.GetProfile(), Principal: req.GetPrincipal(), RequestedBy: req.GetRequestedBy(), Status: req.GetStatus(),
		Limit: int(req.GetLimit()),
	})
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListSSHCertificatesResponse{Certificates: make([]*mcv1.SSHCertificate, 0, len(list))}
	for _, c := range list {
		out.Certificates = append(out.Certificates, sshCertPB(c))
	}
	return out, nil
}

// Revoke implements SSHService.Revoke.
func (h sshGRPC) Revoke(ctx context.Context, req *mcv1.SSHRevokeRequest) (*mcv1.SSHRevokeResponse, error) {
	r, err := h.ssh.Revoke(ctx, caller(ctx), req.GetMount(), sshca.RevokeRequest{
		Serial: req.GetSerial(), PublicKey: req.GetPublicKey(), Fingerprint: req.GetFingerprint(), KeyID: req.GetKeyId(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHRevokeResponse{KrlVersion: r.KRLVersion, Serials: r.Serials}, nil
}
