package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// ssoGRPC implements mciasv1.SSOServiceServer for the configured SSO
// clients. Its one RPC, ExchangeCode (REST: POST /v1/sso/token), is public:
// the code itself is the credential.
type ssoGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafeSSOServiceServer
	grpcHandlers
	clients []SSOClient
}

var _ mciasv1.SSOServiceServer = ssoGRPC{}

// ExchangeCode implements SSOService.ExchangeCode.
func (h ssoGRPC) ExchangeCode(ctx context.Context, req *mciasv1.ExchangeCodeRequest) (*mciasv1.ExchangeCodeResponse, error) {
	client, ok := ssoClient(h.clients, req.GetClientId())
	if !ok {
		return nil, identity.ErrInvalidClient
	}
	iss, err := h.svc.ExchangeSSOCode(ctx, client, req.GetCode(), req.GetRedirectUri())
	if err != nil {
		return nil, err
	}
	return &mciasv1.ExchangeCodeResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}
