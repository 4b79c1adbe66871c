package server

import (
	"context"
	"log/slog"
	"net/http"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

// methodMaps classifies every MCIAS RPC. Only the snapshot is admin-only at
// the interceptor: identity.Service decides admin and self rules for
// everything else, so the rule lives in one place for REST and gRPC.
func methodMaps() grpcserver.MethodMaps {
	set := func(names ...string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	return grpcserver.MethodMaps{
		Public: set(
			mciasv1.AuthService_Login_FullMethodName,
			mciasv1.AuthService_ValidateToken_FullMethodName,
			mciasv1.KeyService_GetJWKS_FullMethodName,
			// The code is the credential.
			mciasv1.SSOService_ExchangeCode_FullMethodName,
		),
		AuthRequired: set(
			mciasv1.AuthService_Renew_FullMethodName,
			mciasv1.AuthService_Logout_FullMethodName,
			mciasv1.AuthService_RevokeToken_FullMethodName,
			mciasv1.AuthService_WhoAmI_FullMethodName,
			mciasv1.AccountService_ListAccounts_FullMethodName,
			mciasv1.AccountService_CreateAccount_FullMethodName,
			mciasv1.AccountService_GetAccount_FullMethodName,
			mciasv1.AccountService_UpdateAccount_FullMethodName,
			mciasv1.AccountService_DeleteAccount_FullMethodName,
			mciasv1.AccountService_SetRoles_FullMethodName,
			mciasv1.AccountService_ChangePassword_FullMethodName,
			mciasv1.AccountService_IssueSystemToken_FullMethodName,
			mciasv1.AccountService_ListTokens_FullMethodName,
			mciasv1.AccountService_EnrollTOTP_FullMethodName,
			mciasv1.AccountService_ConfirmTOTP_FullMethodName,
			mciasv1.AccountService_DisableTOTP_FullMethodName,
			mciasv1.PolicyService_ListPolicies_FullMethodName,
			mciasv1.PolicyService_CreatePolicy_FullMethodName,
			mciasv1.PolicyService_GetPolicy_FullMethodName,
			mciasv1.PolicyService_UpdatePolicy_FullMethodName,
			mciasv1.PolicyService_DeletePolicy_FullMethodName,
			mciasv1.KeyService_ListKeys_FullMethodName,
			mciasv1.KeyService_RotateKey_FullMethodName,
			mciasv1.PasskeyService_ListPasskeys_FullMethodName,
			mciasv1.PasskeyService_RenamePasskey_FullMethodName,
			mciasv1.PasskeyService_DeletePasskey_FullMethodName,
		),
		AdminRequired: set(snapshot.FullMethod),
	}
}

// register puts the six mcias.v1 services and the platform snapshot
// service on srv. The handlers return the domain's errors as they are:
// grpcserver turns them into statuses (mcdsl/apierr) for gRPC and the REST
// gateway alike.
func register(srv *grpcserver.Server, cfg *Config, svc *identity.Service, st *store.Store) {
	h := grpcHandlers{svc: svc}
	mciasv1.RegisterAuthServiceServer(srv, authGRPC{grpcHandlers: h})
	mciasv1.RegisterAccountServiceServer(srv, accountGRPC{grpcHandlers: h})
	mciasv1.RegisterPolicyServiceServer(srv, policyGRPC{grpcHandlers: h})
	mciasv1.RegisterKeyServiceServer(srv, keyGRPC{grpcHandlers: h})
	mciasv1.RegisterSSOServiceServer(srv, ssoGRPC{grpcHandlers: h, clients: cfg.SSOClients})
	mciasv1.RegisterPasskeyServiceServer(srv, passkeyGRPC{grpcHandlers: h})
	snapshot.Register(srv, snapshot.NewServer(st.DB(), "", ServiceName))
}

// restStatus are the REST answers other than 200 OK.
var restStatus = map[string]int{
	mciasv1.AccountService_CreateAccount_FullMethodName: http.StatusCreated,
	mciasv1.PolicyService_CreatePolicy_FullMethodName:   http.StatusCreated,
	mciasv1.AuthService_Logout_FullMethodName:           http.StatusNoContent,
	mciasv1.AuthService_RevokeToken_FullMethodName:      http.StatusNoContent,
	mciasv1.AccountService_DeleteAccount_FullMethodName: http.StatusNoContent,
	mciasv1.PolicyService_DeletePolicy_FullMethodName:   http.StatusNoContent,
	mciasv1.PasskeyService_DeletePasskey_FullMethodName: http.StatusNoContent,
}

// restAPI is the REST face of the services registered on srv, generated
// from mcias.v1's HTTP rules (proto/mcias/v1/http.yaml) and served in
// process. It takes bearer tokens only (the gateway passes no cookies), so
// the web UI's session cookie, which has no CSRF protection here, never
// acts on the JSON API.
func restAPI(srv *grpcserver.Server, logger *slog.Logger) (*gateway.Handler, error) {
	return gateway.New(srv.Local(), gateway.Options{Status: restStatus, Logger: logger},
		gateway.Service(mciasv1.RegisterAuthServiceHandlerClient, mciasv1.NewAuthServiceClient),
		gateway.Service(mciasv1.RegisterAccountServiceHandlerClient, mciasv1.NewAccountServiceClient),
		gateway.Service(mciasv1.RegisterPolicyServiceHandlerClient, mciasv1.NewPolicyServiceClient),
		gateway.Service(mciasv1.RegisterKeyServiceHandlerClient, mciasv1.NewKeyServiceClient),
		gateway.Service(mciasv1.RegisterSSOServiceHandlerClient, mciasv1.NewSSOServiceClient),
		gateway.Service(mciasv1.RegisterPasskeyServiceHandlerClient, mciasv1.NewPasskeyServiceClient),
	)
}

// grpcHandlers is what every service implementation shares.
type grpcHandlers struct {
	svc *identity.Service
}

// errNoCaller answers a call that reached an authenticated handler without
// an identity (not in the AuthRequired map: a wiring mistake).
var errNoCaller = apierr.New(apierr.Unauthenticated, "authentication required")

// caller is the identity the interceptor put in the context.
func caller(ctx context.Context) (*auth.Identity, error) {
	id, ok := auth.IdentityFrom(ctx)
	if !ok {
		return nil, errNoCaller
	}
	return id, nil
}

// account resolves a request's caller and the account it names (an ID or
// a username; see identity.Service.ResolveAccount).
func (h grpcHandlers) account(ctx context.Context, ref string) (*auth.Identity, string, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, "", err
	}
	id, err := h.svc.ResolveAccount(ctx, c, ref)
	if err != nil {
		return nil, "", err
	}
	return c, id, nil
}
