package admin

import (
	"context"

	"google.golang.org/grpc"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	mcproxyv1 "git.metacircular.net/metacircular/mcproxy/gen/mcproxy/v1"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// Register registers the AdminService handlers over svc on srv (the
// admin socket's mcdsl/grpcserver, whose interceptor turns the domain
// errors into statuses through mcdsl/apierr).
func Register(srv grpc.ServiceRegistrar, svc *Service) {
	mcproxyv1.RegisterAdminServiceServer(srv, handlers{svc: svc})
}

// MethodMaps puts every AdminService method in the public map: the admin
// socket has neither TLS nor tokens, and its file permissions decide who
// may connect.
func MethodMaps() grpcserver.MethodMaps {
	public := map[string]bool{}
	for _, m := range mcproxyv1.AdminService_ServiceDesc.Methods {
		public["/"+mcproxyv1.AdminService_ServiceDesc.ServiceName+"/"+m.MethodName] = true
	}
	return grpcserver.MethodMaps{Public: public}
}

// handlers implements mcproxyv1.AdminServiceServer over Service.
type handlers struct {
	// The Unsafe marker instead of the Unimplemented struct: a new RPC is
	// a compile error here, not an Unimplemented answer at run time.
	mcproxyv1.UnsafeAdminServiceServer
	svc *Service
}

var _ mcproxyv1.AdminServiceServer = handlers{}

// routePB converts a route to its protobuf form.
func routePB(r route.Route) *mcproxyv1.Route {
	return &mcproxyv1.Route{
		Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
		TlsCert: r.TLSCert, TlsKey: r.TLSKey, BackendTls: r.BackendTLS, BackendCa: r.BackendCA,
		BackendServerName: r.BackendServerName, SendProxyProtocol: r.SendProxyProtocol,
		BackendProtocol: r.BackendProtocol,
	}
}

// routeFromPB converts a protobuf route.
func routeFromPB(p *mcproxyv1.Route) route.Route {
	return route.Route{
		Listener: p.GetListener(), Hostname: p.GetHostname(), Mode: p.GetMode(), Backend: p.GetBackend(),
		TLSCert: p.GetTlsCert(), TLSKey: p.GetTlsKey(), BackendTLS: p.GetBackendTls(), BackendCA: p.GetBackendCa(),
		BackendServerName: p.GetBackendServerName(), SendProxyProtocol: p.GetSendProxyProtocol(),
		BackendProtocol: p.GetBackendProtocol(),
	}
}

// rulePB converts a firewall rule to its protobuf form.
func rulePB(r route.Rule) *mcproxyv1.FirewallRule {
	return &mcproxyv1.FirewallRule{Kind: r.Kind, Value: r.Value, Reason: r.Reason}
}

// ListRoutes implements AdminService.ListRoutes.
func (h handlers) ListRoutes(ctx context.Context, req *mcproxyv1.ListRoutesRequest) (*mcproxyv1.ListRoutesResponse, error) {
	rs, err := h.svc.Routes(ctx, req.GetListener())
	if err != nil {
		return nil, err
	}
	out := &mcproxyv1.ListRoutesResponse{Routes: make([]*mcproxyv1.Route, 0, len(rs))}
	for _, r := range rs {
		out.Routes = append(out.Routes, routePB(r))
	}
	return out, nil
}

// AddRoute implements AdminService.AddRoute.
func (h handlers) AddRoute(ctx context.Context, req *mcproxyv1.AddRouteRequest) (*mcproxyv1.AddRouteResponse, error) {
	if req.GetRoute() == nil {
		return nil, apierr.InvalidField("route", "is required")
	}
	r, created, err := h.svc.AddRoute(ctx, routeFromPB(req.GetRoute()))
	if err != nil {
		return nil, err
	}
	return &mcproxyv1.AddRouteResponse{Route: routePB(r), Created: created}, nil
}

// RemoveRoute implements AdminService.RemoveRoute.
func (h handlers) RemoveRoute(ctx context.Context, req *mcproxyv1.RemoveRouteRequest) (*mcproxyv1.RemoveRouteResponse, error) {
	if err := h.svc.RemoveRoute(ctx, req.GetListener(), req.GetHostname()); err != nil {
		return nil, err
	}
	return &mcproxyv1.RemoveRouteResponse{}, nil
}

// ListFirewallRules implements AdminService.ListFirewallRules.
func (h handlers) ListFirewallRules(ctx context.Context, _ *mcproxyv1.ListFirewallRulesRequest) (*mcproxyv1.ListFirewallRulesResponse, error) {
	rs, err := h.svc.Rules(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcproxyv1.ListFirewallRulesResponse{Rules: make([]*mcproxyv1.FirewallRule, 0, len(rs))}
	for _, r := range rs {
		out.Rules = append(out.Rules, rulePB(r))
	}
	return out, nil
}

// AddFirewallRule implements AdminService.AddFirewallRule.
func (h handlers) AddFirewallRule(ctx context.Context, req *mcproxyv1.AddFirewallRuleRequest) (*mcproxyv1.AddFirewallRuleResponse, error) {
	p := req.GetRule()
	if p == nil {
		return nil, apierr.InvalidField("rule", "is required")
	}
	r, created, err := h.svc.AddRule(ctx, route.Rule{Kind: p.GetKind(), Value: p.GetValue(), Reason: p.GetReason()})
	if err != nil {
		return nil, err
	}
	return &mcproxyv1.AddFirewallRuleResponse{Rule: rulePB(r), Created: created}, nil
}

// RemoveFirewallRule implements AdminService.RemoveFirewallRule.
func (h handlers) RemoveFirewallRule(ctx context.Context, req *mcproxyv1.RemoveFirewallRuleRequest) (*mcproxyv1.RemoveFirewallRuleResponse, error) {
	if err := h.svc.RemoveRule(ctx, req.GetKind(), req.GetValue()); err != nil {
		return nil, err
	}
	return &mcproxyv1.RemoveFirewallRuleResponse{}, nil
}

// Status implements AdminService.Status.
func (h handlers) Status(ctx context.Context, _ *mcproxyv1.StatusRequest) (*mcproxyv1.StatusResponse, error) {
	st, err := h.svc.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcproxyv1.StatusResponse{
		OpenConnections: st.OpenConnections, Routes: int32(st.Routes), //nolint:gosec // counts are far below 2^31
		FirewallRules: int32(st.FirewallRules), Divergence: st.Divergence, Database: st.Database, //nolint:gosec // as above
	}
	for _, l := range st.Listeners {
		out.Listeners = append(out.Listeners, &mcproxyv1.ListenerStatus{Name: l.Name, Addr: l.Addr, Routes: int32(l.Routes)}) //nolint:gosec // as above
	}
	return out, nil
}
