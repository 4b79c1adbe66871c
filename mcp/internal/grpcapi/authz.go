package grpcapi

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
)

// Caller classes an RPC may allow.
type Caller int

const (
	// Operators are humans with the MCIAS role admin or user (never
	// guest).
	Operators Caller = 1 << iota
	// Admins are humans with the role admin.
	Admins
	// Systems are the system accounts named in [auth] system_accounts
	// (the master, the agent's own account for mcp-agent recover).
	Systems
)

// Allowed is the agent's per-RPC map of allowed callers. An RPC that is
// not in it is refused: Guard checks at start that every registered RPC
// has an entry, so a new RPC without one stops the agent from starting
// rather than answering anybody.
var Allowed = map[string]Caller{
	mcpv1.AgentService_Deploy_FullMethodName:       Operators | Systems,
	mcpv1.AgentService_Undeploy_FullMethodName:     Operators | Systems,
	mcpv1.AgentService_Stop_FullMethodName:         Operators | Systems,
	mcpv1.AgentService_Start_FullMethodName:        Operators | Systems,
	mcpv1.AgentService_Restart_FullMethodName:      Operators | Systems,
	mcpv1.AgentService_Recover_FullMethodName:      Admins | Systems,
	mcpv1.AgentService_ListServices_FullMethodName: Operators | Systems,
	mcpv1.AgentService_GetService_FullMethodName:   Operators | Systems,
	mcpv1.AgentService_Logs_FullMethodName:         Operators | Systems,
	mcpv1.AgentService_NodeStatus_FullMethodName:   Operators | Systems,
	// Service data holds the services' secrets: admins and the master.
	mcpv1.DataService_PushFile_FullMethodName:          Admins | Systems,
	mcpv1.DataService_PullFile_FullMethodName:          Admins | Systems,
	mcpv1.DataService_ExportServiceData_FullMethodName: Admins | Systems,
	mcpv1.DataService_ImportServiceData_FullMethodName: Admins | Systems,
}

// Policy decides a caller against the map.
type Policy struct {
	// SystemAccounts are the system accounts of class Systems.
	SystemAccounts []string
	Allowed        map[string]Caller
}

// Check refuses a caller the method does not allow.
func (p Policy) Check(ctx context.Context, method string) error {
	allowed, ok := p.Allowed[method]
	if !ok {
		return apierr.New(apierr.Denied, "method "+method+" allows no caller")
	}
	id, ok := auth.IdentityFrom(ctx)
	if !ok || id == nil {
		return apierr.New(apierr.Unauthenticated, "authentication required")
	}
	switch {
	case id.IsSystem():
		if allowed&Systems != 0 && slices.Contains(p.SystemAccounts, id.Username) {
			return nil
		}
	case id.HasRole(auth.RoleGuest):
		return apierr.New(apierr.Denied, "guests may not use the MCP agent")
	case id.IsAdmin():
		if allowed&(Admins|Operators) != 0 {
			return nil
		}
	case id.HasRole(auth.RoleUser):
		if allowed&Operators != 0 {
			return nil
		}
	}
	return apierr.New(apierr.Denied, fmt.Sprintf("%s may not call %s", id.Username, method))
}

// Guard returns desc with every handler checking the policy first (after
// the interceptor authenticated the caller). It fails if a method of desc
// has no entry in the map.
func (p Policy) Guard(desc *grpc.ServiceDesc) (*grpc.ServiceDesc, error) {
	out := *desc
	out.Methods = nil
	out.Streams = nil
	for _, m := range desc.Methods {
		full := "/" + desc.ServiceName + "/" + m.MethodName
		if _, ok := p.Allowed[full]; !ok {
			return nil, fmt.Errorf("rpc %s has no allowed callers: add it to grpcapi.Allowed", full)
		}
		orig := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			check := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				guarded := func(ctx context.Context, req any) (any, error) {
					if err := p.Check(ctx, full); err != nil {
						return nil, err
					}
					return h(ctx, req)
				}
				if ic == nil {
					return guarded(ctx, req)
				}
				return ic(ctx, req, info, guarded)
			}
			return orig(srv, ctx, dec, check)
		}
		out.Methods = append(out.Methods, m)
	}
	for _, s := range desc.Streams {
		full := "/" + desc.ServiceName + "/" + s.StreamName
		if _, ok := p.Allowed[full]; !ok {
			return nil, fmt.Errorf("rpc %s has no allowed callers: add it to grpcapi.Allowed", full)
		}
		orig := s.Handler
		s.Handler = func(srv any, stream grpc.ServerStream) error {
			if err := p.Check(stream.Context(), full); err != nil {
				return err
			}
			return orig(srv, stream)
		}
		out.Streams = append(out.Streams, s)
	}
	return &out, nil
}
