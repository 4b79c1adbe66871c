package server

import (
	"context"
	"log/slog"
	"net/http"
	"slices"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/sshca"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/transit"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/u2u"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Method-name groups, for the maps below.
var (
	policyMethods = []string{
		mcv1.PolicyService_ListRules_FullMethodName, mcv1.PolicyService_CreateRule_FullMethodName,
		mcv1.PolicyService_UpdateRule_FullMethodName, mcv1.PolicyService_DeleteRule_FullMethodName,
		mcv1.PolicyService_ListLimits_FullMethodName, mcv1.PolicyService_CreateLimit_FullMethodName,
		mcv1.PolicyService_UpdateLimit_FullMethodName, mcv1.PolicyService_DeleteLimit_FullMethodName,
		mcv1.PolicyService_Check_FullMethodName,
	}
	caMethods = []string{
		mcv1.CAService_GenerateRoot_FullMethodName, mcv1.CAService_ImportRoot_FullMethodName,
		mcv1.CAService_CreateIssuer_FullMethodName, mcv1.CAService_ListIssuers_FullMethodName,
		mcv1.CAService_GetIssuer_FullMethodName, mcv1.CAService_UpdateIssuer_FullMethodName,
		mcv1.CAService_Issue_FullMethodName, mcv1.CAService_SignCSR_FullMethodName,
		mcv1.CAService_Renew_FullMethodName, mcv1.CAService_Revoke_FullMethodName,
		mcv1.CAService_GetCertificate_FullMethodName, mcv1.CAService_ListCertificates_FullMethodName,
		mcv1.CAService_GetCRL_FullMethodName, mcv1.CAService_RebuildCRL_FullMethodName,
	}
	acmeMethods = []string{
		mcv1.ACMEService_CreateEAB_FullMethodName, mcv1.ACMEService_ListEABs_FullMethodName,
		mcv1.ACMEService_RevokeEAB_FullMethodName,
	}
	sshMethods = []string{
		mcv1.SSHService_GenerateCA_FullMethodName, mcv1.SSHService_GetCA_FullMethodName, mcv1.SSHService_KRL_FullMethodName,
		mcv1.SSHService_CreateProfile_FullMethodName, mcv1.SSHService_UpdateProfile_FullMethodName,
		mcv1.SSHService_DeleteProfile_FullMethodName, mcv1.SSHService_GetProfile_FullMethodName,
		mcv1.SSHService_ListProfiles_FullMethodName, mcv1.SSHService_Sign_FullMethodName,
		mcv1.SSHService_GetCertificate_FullMethodName, mcv1.SSHService_ListCertificates_FullMethodName,
		mcv1.SSHService_Revoke_FullMethodName,
	}
	transitMethods = []string{
		mcv1.TransitService_CreateKey_FullMethodName, mcv1.TransitService_GetKey_FullMethodName,
		mcv1.TransitService_ListKeys_FullMethodName, mcv1.TransitService_UpdateKeyConfig_FullMethodName,
		mcv1.TransitService_RotateKey_FullMethodName, mcv1.TransitService_DeleteKey_FullMethodName,
		mcv1.TransitService_ExportKey_FullMethodName, mcv1.TransitService_Encrypt_FullMethodName,
		mcv1.TransitService_Decrypt_FullMethodName, mcv1.TransitService_Rewrap_FullMethodName,
		mcv1.TransitService_EncryptBatch_FullMethodName, mcv1.TransitService_DecryptBatch_FullMethodName,
		mcv1.TransitService_RewrapBatch_FullMethodName, mcv1.TransitService_GenerateDataKey_FullMethodName,
		mcv1.TransitService_Sign_FullMethodName, mcv1.TransitService_Verify_FullMethodName,
		mcv1.TransitService_HMAC_FullMethodName, mcv1.TransitService_VerifyHMAC_FullMethodName,
	}
	u2uMethods = []string{
		mcv1.U2UService_CreateKey_FullMethodName, mcv1.U2UService_RotateKey_FullMethodName,
		mcv1.U2UService_GetKey_FullMethodName, mcv1.U2UService_ListKeys_FullMethodName,
		mcv1.U2UService_Send_FullMethodName, mcv1.U2UService_Open_FullMethodName,
	}
	// engineMethods are the typed engine services' RPCs.
	engineMethods = slices.Concat(caMethods, sshMethods, transitMethods, u2uMethods)
)

// methodMaps classifies every Metacrypt RPC. Status and Unseal are
// public (unseal's credential is the password); the barrier, the mount
// table and the policy are admin-only; engine RPCs need a token and are
// authorized by the policy inside the engine (CA, SSH CA, transit, u2u),
// for gRPC, REST, the generic request and the ACME seam alike; the EAB RPCs (ACMEService) need a token
// and act on the caller's own credentials, any for admins. Everything
// that touches the barrier or the policy is seal-required, so it answers
// Unavailable (503) while sealed before any token is checked.
func methodMaps() grpcserver.MethodMaps {
	auth := slices.Concat([]string{mcv1.SysService_ListMounts_FullMethodName, mcv1.EngineService_Request_FullMethodName}, engineMethods, acmeMethods)
	admin := append([]string{
		mcv1.SysService_Init_FullMethodName, mcv1.SysService_Seal_FullMethodName,
		mcv1.SysService_ChangePassword_FullMethodName, mcv1.SysService_Rotate_FullMethodName,
		mcv1.SysService_CreateMount_FullMethodName, mcv1.SysService_DeleteMount_FullMethodName,
		snapshot.FullMethod,
	}, policyMethods...)
	sealed := slices.Concat([]string{
		mcv1.SysService_Rotate_FullMethodName, mcv1.SysService_ListMounts_FullMethodName,
		mcv1.SysService_CreateMount_FullMethodName, mcv1.SysService_DeleteMount_FullMethodName,
		mcv1.EngineService_Request_FullMethodName,
	}, policyMethods, engineMethods, acmeMethods)
	return grpcserver.MethodMaps{
		Public:        set(mcv1.SysService_Status_FullMethodName, mcv1.SysService_Unseal_FullMethodName),
		AuthRequired:  set(auth...),
		AdminRequired: set(admin...),
		SealRequired:  set(sealed...),
	}
}

// app is what the handlers call.
type app struct {
	barrier *barrier.Barrier
	mounts  *mount.Table
	policy  *policy.Engine
	ca      *ca.Service
	ssh     *sshca.Service
	transit *transit.Service
	u2u     *u2u.Service
	acme    *acme.Service
	version string
	logger  *slog.Logger
}

// register puts every service on srv.
func register(srv *grpcserver.Server, a *app, st *store.Store) {
	mcv1.RegisterSysServiceServer(srv, sysGRPC{app: a})
	mcv1.RegisterPolicyServiceServer(srv, policyGRPC{app: a})
	mcv1.RegisterCAServiceServer(srv, caGRPC{app: a})
	mcv1.RegisterSSHServiceServer(srv, sshGRPC{app: a})
	mcv1.RegisterTransitServiceServer(srv, transitGRPC{app: a})
	mcv1.RegisterU2UServiceServer(srv, u2uGRPC{app: a})
	mcv1.RegisterEngineServiceServer(srv, engineGRPC{app: a})
	mcv1.RegisterACMEServiceServer(srv, acmeGRPC{app: a})
	snapshot.Register(srv, snapshot.NewServer(st.DB(), "", ServiceName))
}

// restStatus are the REST answers other than 200 OK.
var restStatus = map[string]int{
	mcv1.SysService_CreateMount_FullMethodName:    http.StatusCreated,
	mcv1.SysService_DeleteMount_FullMethodName:    http.StatusNoContent,
	mcv1.PolicyService_CreateRule_FullMethodName:  http.StatusCreated,
	mcv1.PolicyService_DeleteRule_FullMethodName:  http.StatusNoContent,
	mcv1.PolicyService_CreateLimit_FullMethodName: http.StatusCreated,
	mcv1.PolicyService_DeleteLimit_FullMethodName: http.StatusNoContent,
	mcv1.CAService_GenerateRoot_FullMethodName:    http.StatusCreated,
	mcv1.CAService_ImportRoot_FullMethodName:      http.StatusCreated,
	mcv1.CAService_CreateIssuer_FullMethodName:    http.StatusCreated,
	mcv1.ACMEService_CreateEAB_FullMethodName:     http.StatusCreated,
	mcv1.SSHService_GenerateCA_FullMethodName:     http.StatusCreated,
	mcv1.SSHService_CreateProfile_FullMethodName:  http.StatusCreated,
	mcv1.SSHService_DeleteProfile_FullMethodName:  http.StatusNoContent,
	mcv1.TransitService_CreateKey_FullMethodName:  http.StatusCreated,
	mcv1.TransitService_DeleteKey_FullMethodName:  http.StatusNoContent,
	mcv1.U2UService_CreateKey_FullMethodName:      http.StatusCreated,
}

// restAPI is the REST face of the services on srv, generated from
// metacrypt.v1's HTTP rules (proto/metacrypt/v1/http.yaml).
func restAPI(srv *grpcserver.Server, logger *slog.Logger) (*gateway.Handler, error) {
	return gateway.New(srv.Local(), gateway.Options{Status: restStatus, Logger: logger},
		gateway.Service(mcv1.RegisterSysServiceHandlerClient, mcv1.NewSysServiceClient),
		gateway.Service(mcv1.RegisterPolicyServiceHandlerClient, mcv1.NewPolicyServiceClient),
		gateway.Service(mcv1.RegisterCAServiceHandlerClient, mcv1.NewCAServiceClient),
		gateway.Service(mcv1.RegisterSSHServiceHandlerClient, mcv1.NewSSHServiceClient),
		gateway.Service(mcv1.RegisterTransitServiceHandlerClient, mcv1.NewTransitServiceClient),
		gateway.Service(mcv1.RegisterU2UServiceHandlerClient, mcv1.NewU2UServiceClient),
		gateway.Service(mcv1.RegisterEngineServiceHandlerClient, mcv1.NewEngineServiceClient),
		gateway.Service(mcv1.RegisterACMEServiceHandlerClient, mcv1.NewACMEServiceClient),
	)
}

// caller is the authenticated caller the interceptor put in the context
// (the zero Caller, which the domain refuses, if there is none).
func caller(ctx context.Context) engine.Caller {
	id, ok := auth.IdentityFrom(ctx)
	if !ok {
		return engine.Caller{}
	}
	return engine.Caller{Username: id.Username, Subject: id.Subject, AccountType: id.AccountType, Roles: id.Roles}
}
