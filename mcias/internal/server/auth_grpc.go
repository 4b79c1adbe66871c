package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// authGRPC implements mciasv1.AuthServiceServer.
type authGRPC struct {
	// The Unsafe marker (a nil interface, as in mcdsl/snapshot) instead of
	// the Unimplemented struct: a new RPC is a compile error here, not an
	// Unimplemented answer at run time.
	mciasv1.UnsafeAuthServiceServer
	grpcHandlers
}

var _ mciasv1.AuthServiceServer = authGRPC{}

// Login implements AuthService.Login. The peer address feeds the per-IP
// throttle; over REST the gateway makes the HTTP client the peer.
func (h authGRPC) Login(ctx context.Context, req *mciasv1.LoginRequest) (*mciasv1.LoginResponse, error) {
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	iss, err := h.svc.Login(ctx, identity.LoginRequest{
		Username: req.GetUsername(), Password: req.GetPassword(), TOTPCode: req.GetTotpCode(),
		ServiceName: req.GetServiceName(), Tags: req.GetTags(), RemoteIP: remote,
	})
	if err != nil {
		return nil, err
	}
	return &mciasv1.LoginResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}

// Renew implements AuthService.Renew for the token the call carries.
func (h authGRPC) Renew(ctx context.Context, _ *mciasv1.RenewRequest) (*mciasv1.RenewResponse, error) {
	tok, _ := auth.TokenFromGRPC(ctx)
	iss, err := h.svc.Renew(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &mciasv1.RenewResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}

// Logout implements AuthService.Logout for the token the call carries.
func (h authGRPC) Logout(ctx context.Context, _ *mciasv1.LogoutRequest) (*mciasv1.LogoutResponse, error) {
	tok, _ := auth.TokenFromGRPC(ctx)
	if err := h.svc.Logout(ctx, tok); err != nil {
		return nil, err
	}
	return &mciasv1.LogoutResponse{}, nil
}

// ValidateToken implements AuthService.ValidateToken: an invalid token is
// an answer with only valid (false) set, not an error.
func (h authGRPC) ValidateToken(ctx context.Context, req *mciasv1.ValidateTokenRequest) (*mciasv1.ValidateTokenResponse, error) {
	id, err := h.svc.ValidateToken(ctx, req.GetToken())
	if errors.Is(err, identity.ErrInvalidToken) {
		return &mciasv1.ValidateTokenResponse{Valid: false}, nil
	}
	if err != nil {
		return nil, err
	}
	return &mciasv1.ValidateTokenResponse{
		Valid: true, Subject: proto.String(id.Subject), Username: proto.String(id.Username),
		AccountType: proto.String(id.AccountType), Roles: roleList(id.Roles), ExpiresAt: timestamppb.New(id.ExpiresAt),
	}, nil
}

// RevokeToken implements AuthService.RevokeToken.
func (h authGRPC) RevokeToken(ctx context.Context, req *mciasv1.RevokeTokenRequest) (*mciasv1.RevokeTokenResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.RevokeToken(ctx, c, req.GetJti()); err != nil {
		return nil, err
	}
	return &mciasv1.RevokeTokenResponse{}, nil
}

// WhoAmI implements AuthService.WhoAmI.
func (h authGRPC) WhoAmI(ctx context.Context, _ *mciasv1.WhoAmIRequest) (*mciasv1.WhoAmIResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return &mciasv1.WhoAmIResponse{
		Valid: true, Subject: c.Subject, Username: c.Username, AccountType: c.AccountType,
		Roles: c.Roles, ExpiresAt: timestamppb.New(c.ExpiresAt),
	}, nil
}

// roleList is roles as the ListValue the API carries where the presence of
// a role list matters.
func roleList(roles []string) *structpb.ListValue {
	l := &structpb.ListValue{Values: make([]*structpb.Value, 0, len(roles))}
	for _, r := range roles {
		l.Values = append(l.Values, structpb.NewStringValue(r))
	}
	return l
}

// rolesOf reads a role list from a request: strings only.
func rolesOf(l *structpb.ListValue) ([]string, error) {
	roles := make([]string, 0, len(l.GetValues()))
	for i, v := range l.GetValues() {
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return nil, apierr.InvalidField("roles", "element %d is not a string (roles are admin, user, guest)", i)
		}
		roles = append(roles, s.StringValue)
	}
	return roles, nil
}

// --- KeyService ---

// keyGRPC implements mciasv1.KeyServiceServer.
type keyGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafeKeyServiceServer
	grpcHandlers
}

var _ mciasv1.KeyServiceServer = keyGRPC{}

func keyPB(k identity.KeyInfo) *mciasv1.SigningKey {
	return &mciasv1.SigningKey{Kid: k.ID, CreatedAt: timestamppb.New(k.CreatedAt), Active: k.Active}
}

// ListKeys implements KeyService.ListKeys.
func (h keyGRPC) ListKeys(ctx context.Context, _ *mciasv1.ListKeysRequest) (*mciasv1.ListKeysResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := h.svc.Keys(ctx, c)
	if err != nil {
		return nil, err
	}
	out := &mciasv1.ListKeysResponse{Keys: make([]*mciasv1.SigningKey, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, keyPB(k))
	}
	return out, nil
}

// RotateKey implements KeyService.RotateKey.
func (h keyGRPC) RotateKey(ctx context.Context, _ *mciasv1.RotateKeyRequest) (*mciasv1.RotateKeyResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	k, err := h.svc.RotateKey(ctx, c)
	if err != nil {
		return nil, err
	}
	return &mciasv1.RotateKeyResponse{Key: keyPB(k)}, nil
}

// GetJWKS implements KeyService.GetJWKS.
func (h keyGRPC) GetJWKS(context.Context, *mciasv1.GetJWKSRequest) (*mciasv1.GetJWKSResponse, error) {
	set := h.svc.JWKS()
	out := &mciasv1.GetJWKSResponse{Keys: make([]*mciasv1.JWK, 0, len(set.Keys))}
	for _, k := range set.Keys {
		out.Keys = append(out.Keys, &mciasv1.JWK{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Use: k.Use, Alg: k.Alg})
	}
	return out, nil
}
