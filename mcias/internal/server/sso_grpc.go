package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// registerSSO registers SSOService for the configured SSO clients. Its one
// RPC, ExchangeCode, is in methodMaps' Public map like its REST
// counterpart: the code itself is the credential.
func registerSSO(g *grpc.Server, cfg *Config, h grpcHandlers) {
	mciasv1.RegisterSSOServiceServer(g, ssoGRPC{grpcHandlers: h, clients: cfg.SSOClients})
}

// ssoGRPC implements mciasv1.SSOServiceServer.
type ssoGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafeSSOServiceServer
	grpcHandlers
	clients []SSOClient
}

var _ mciasv1.SSOServiceServer = ssoGRPC{}

// ExchangeCode implements SSOService.ExchangeCode, as POST /v1/sso/token.
func (h ssoGRPC) ExchangeCode(ctx context.Context, req *mciasv1.ExchangeCodeRequest) (*mciasv1.ExchangeCodeResponse, error) {
	client, ok := ssoClient(h.clients, req.GetClientId())
	if !ok {
		return nil, h.fail(identity.ErrInvalidClient)
	}
	iss, err := h.svc.ExchangeSSOCode(ctx, client, req.GetCode(), req.GetRedirectUri())
	if err != nil {
		return nil, h.fail(err)
	}
	return &mciasv1.ExchangeCodeResponse{Token: iss.Token, ExpiresAt: timestamppb.New(iss.ExpiresAt)}, nil
}
