// Package grpcapi implements mcr.v1 (the management API) over the domain
// packages; its REST face is generated from the same proto. Handlers
// translate and check the caller; errors are mcdsl/apierr kinds.
package grpcapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/gc"
	"git.metacircular.net/metacircular/mcr/internal/meta"
)

// Deps are what the handlers need.
type Deps struct {
	Store *meta.Store
	GC    *gc.Collector
	// Policy returns the rules in force; Reload rereads them after a
	// change.
	Policy func() *access.Policy
	Reload func(ctx context.Context) error
	Agents []string
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// MethodMaps classifies every RPC: browsing needs a signed-in caller
// (and shows only what the caller may pull); rules, GC, audit and
// snapshots are for admins.
func MethodMaps() grpcserver.MethodMaps {
	return grpcserver.MethodMaps{
		AuthRequired: set(
			mcrv1.RegistryService_ListRepositories_FullMethodName,
			mcrv1.RegistryService_GetRepository_FullMethodName,
			mcrv1.RegistryService_GetManifest_FullMethodName,
		),
		AdminRequired: set(
			mcrv1.PolicyService_ListPolicies_FullMethodName,
			mcrv1.PolicyService_GetPolicy_FullMethodName,
			mcrv1.PolicyService_CreatePolicy_FullMethodName,
			mcrv1.PolicyService_UpdatePolicy_FullMethodName,
			mcrv1.PolicyService_DeletePolicy_FullMethodName,
			mcrv1.GCService_RunGC_FullMethodName,
			mcrv1.AuditService_ListEvents_FullMethodName,
			snapshot.FullMethod,
		),
	}
}

// RESTStatus are the REST answers other than 200 OK.
var RESTStatus = map[string]int{
	mcrv1.PolicyService_CreatePolicy_FullMethodName: http.StatusCreated,
	mcrv1.PolicyService_DeletePolicy_FullMethodName: http.StatusNoContent,
}

// Register puts every service on srv.
func Register(srv *grpcserver.Server, d Deps, snap *snapshot.Server) {
	mcrv1.RegisterRegistryServiceServer(srv, registryGRPC{d: d})
	mcrv1.RegisterPolicyServiceServer(srv, policyGRPC{d: d})
	mcrv1.RegisterGCServiceServer(srv, gcGRPC{d: d})
	mcrv1.RegisterAuditServiceServer(srv, auditGRPC{d: d})
	snapshot.Register(srv, snap)
}

// Principal is the MCIAS caller as the access rules see it.
func Principal(id *auth.Identity) access.Principal {
	if id == nil {
		return access.Anonymous
	}
	return access.Principal{Username: id.Username, AccountType: id.AccountType, Roles: id.Roles}
}

func caller(ctx context.Context) (*auth.Identity, access.Principal) {
	id, _ := auth.IdentityFrom(ctx)
	return id, Principal(id)
}

var errNoRepository = apierr.New(apierr.NotFound, "no such repository")

// noRepository is the answer for a repository that does not exist or
// that the caller may not pull (the same, so names do not leak).
func noRepository(name string) error {
	return fmt.Errorf("%w: %s", errNoRepository, name)
}

func tsOf(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
