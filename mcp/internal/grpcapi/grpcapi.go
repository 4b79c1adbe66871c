// Package grpcapi is the agent's gRPC API (mcp.v1 AgentService and
// DataService): handlers that translate messages and call the agent
// domain (internal/agent), and the per-RPC map of allowed callers
// (authz.go). The master will call these same RPCs.
package grpcapi

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
	"git.metacircular.net/metacircular/mcp/internal/agent"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/specpb"
)

// chunkSize is the payload of each data message.
const chunkSize = 64 << 10

// MethodMaps puts every agent RPC in the interceptor's AuthRequired map:
// the interceptor authenticates, the Policy then decides per RPC.
func MethodMaps() grpcserver.MethodMaps {
	m := grpcserver.MethodMaps{AuthRequired: map[string]bool{}}
	for method := range Allowed {
		m.AuthRequired[method] = true
	}
	return m
}

// Register puts both services on srv behind the policy.
func Register(srv *grpcserver.Server, a *agent.Agent, p Policy) error {
	for _, s := range []struct {
		desc *grpc.ServiceDesc
		impl any
	}{
		{&mcpv1.AgentService_ServiceDesc, &agentServer{a: a}},
		{&mcpv1.DataService_ServiceDesc, &dataServer{a: a}},
	} {
		d, err := p.Guard(s.desc)
		if err != nil {
			return err
		}
		srv.RegisterService(d, s.impl)
	}
	return nil
}

type agentServer struct {
	// The Unsafe marker: a new RPC is a compile error here.
	mcpv1.UnsafeAgentServiceServer
	a *agent.Agent
}

var _ mcpv1.AgentServiceServer = (*agentServer)(nil)

func eventPB(ev deploy.Event) *mcpv1.OperationEvent {
	return &mcpv1.OperationEvent{
		Operation: ev.Operation, Service: ev.Service, Kind: ev.Kind, Step: ev.Step, State: ev.State, Message: ev.Message,
		At: timestamppb.New(ev.At), Final: ev.Final, Result: ev.Result, Error: ev.Error,
	}
}

// stream sends an operation's events until its final one. The operation
// goes on if the caller goes away.
func (h *agentServer) stream(op registry.Operation, ch <-chan deploy.Event, send func(*mcpv1.OperationEvent) error) error {
	sawFinal := false
	for ev := range ch {
		sawFinal = sawFinal || ev.Final
		if err := send(eventPB(ev)); err != nil {
			return err
		}
	}
	if !sawFinal {
		// The watcher fell behind and lost the final event: read the
		// result from the registry.
		o, err := h.a.Registry.Operation(context.Background(), op.ID)
		if err != nil {
			return err
		}
		return send(&mcpv1.OperationEvent{Operation: o.ID, Service: o.Service, Kind: o.Kind, Step: "end", State: o.State,
			At: timestamppb.Now(), Final: true, Result: o.State, Error: o.Error})
	}
	return nil
}

// Deploy implements AgentService.Deploy.
func (h *agentServer) Deploy(req *mcpv1.DeployRequest, ss mcpv1.AgentService_DeployServer) error {
	sp, err := specpb.FromPB(req.GetSpec())
	if err != nil {
		return apierr.InvalidField("spec", "%s", err.Error())
	}
	op, ch, err := h.a.Deploy(sp)
	if err != nil {
		return err
	}
	return h.stream(op, ch, ss.Send)
}

func (h *agentServer) act(kind, service string, send func(*mcpv1.OperationEvent) error) error {
	op, ch, err := h.a.Act(kind, service)
	if err != nil {
		return err
	}
	return h.stream(op, ch, send)
}

// Undeploy implements AgentService.Undeploy.
func (h *agentServer) Undeploy(req *mcpv1.ServiceRequest, ss mcpv1.AgentService_UndeployServer) error {
	return h.act(deploy.KindUndeploy, req.GetService(), ss.Send)
}

// Stop implements AgentService.Stop.
func (h *agentServer) Stop(req *mcpv1.ServiceRequest, ss mcpv1.AgentService_StopServer) error {
	return h.act(deploy.KindStop, req.GetService(), ss.Send)
}

// Start implements AgentService.Start.
func (h *agentServer) Start(req *mcpv1.ServiceRequest, ss mcpv1.AgentService_StartServer) error {
	return h.act(deploy.KindStart, req.GetService(), ss.Send)
}

// Restart implements AgentService.Restart.
func (h *agentServer) Restart(req *mcpv1.ServiceRequest, ss mcpv1.AgentService_RestartServer) error {
	return h.act(deploy.KindRestart, req.GetService(), ss.Send)
}

// Recover implements AgentService.Recover.
func (h *agentServer) Recover(req *mcpv1.RecoverRequest, ss mcpv1.AgentService_RecoverServer) error {
	failed, err := h.a.Recover(ss.Context(), req.GetServices(), func(ev deploy.Event) error { return ss.Send(eventPB(ev)) })
	if err != nil {
		return err
	}
	final := &mcpv1.OperationEvent{Kind: deploy.KindRecover, Step: "end", At: timestamppb.Now(), Final: true, Result: registry.OpSucceeded}
	if len(failed) > 0 {
		final.Result = registry.OpFailed
		final.Error = "not recovered: " + joinNames(failed)
	}
	return ss.Send(final)
}

func joinNames(n []string) string { return strings.Join(n, ", ") }

func servicePB(v agent.Service) *mcpv1.Service {
	out := &mcpv1.Service{
		Name: v.Name, Desired: v.Desired, Revision: v.Revision, SpecHash: v.Hash, Drift: v.Drift, Flapping: v.Flapping,
	}
	if v.Spec != nil {
		out.Spec = specpb.ToPB(v.Spec)
	}
	if v.Revision > 0 {
		out.DeployedAt = timestamppb.New(v.UpdatedAt)
	}
	if v.LastOp != nil {
		out.LastOperation = v.LastOp.Kind + " " + v.LastOp.State
		out.LastError = v.LastOp.Error
	}
	for _, in := range v.Instances {
		pi := &mcpv1.Instance{
			Component: in.Component, Container: in.Container, ContainerId: in.ContainerID, Image: in.Image, ImageId: in.ImageID,
			State: in.State, Revision: in.Revision, ExitCode: int32(in.ExitCode), //nolint:gosec // exit codes fit
		}
		if !in.StartedAt.IsZero() {
			pi.StartedAt = timestamppb.New(in.StartedAt)
		}
		for _, p := range in.Ports {
			pi.Ports = append(pi.Ports, &mcpv1.PortBinding{Route: p.Route, Port: int32(p.Port), Hostname: p.Hostname, ListenerPort: int32(p.ListenerPort)}) //nolint:gosec // ports fit
		}
		out.Instances = append(out.Instances, pi)
	}
	return out
}

func alertPB(a registry.Alert) *mcpv1.Alert {
	return &mcpv1.Alert{At: timestamppb.New(a.At), Service: a.Service, Kind: a.Kind, Message: a.Message}
}

// ListServices implements AgentService.ListServices.
func (h *agentServer) ListServices(ctx context.Context, _ *mcpv1.ListServicesRequest) (*mcpv1.ListServicesResponse, error) {
	svcs, err := h.a.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcpv1.ListServicesResponse{Services: make([]*mcpv1.Service, 0, len(svcs))}
	for _, s := range svcs {
		out.Services = append(out.Services, servicePB(s))
	}
	return out, nil
}

// GetService implements AgentService.GetService.
func (h *agentServer) GetService(ctx context.Context, req *mcpv1.ServiceRequest) (*mcpv1.GetServiceResponse, error) {
	v, events, alerts, err := h.a.Service(ctx, req.GetService())
	if err != nil {
		return nil, err
	}
	out := &mcpv1.GetServiceResponse{Service: servicePB(v)}
	for _, e := range events {
		out.Events = append(out.Events, eventPB(deploy.Event{Event: e}))
	}
	for _, a := range alerts {
		out.Alerts = append(out.Alerts, alertPB(a))
	}
	return out, nil
}

// sendWriter turns writes into stream messages.
type sendWriter func([]byte) error

func (w sendWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += chunkSize {
		end := min(off+chunkSize, len(p))
		if err := w(append([]byte(nil), p[off:end]...)); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// Logs implements AgentService.Logs.
func (h *agentServer) Logs(req *mcpv1.LogsRequest, ss mcpv1.AgentService_LogsServer) error {
	return h.a.Logs(ss.Context(), req.GetService(), req.GetComponent(),
		runtime.LogOptions{Follow: req.GetFollow(), Tail: int(req.GetTail()), Since: req.GetSince()},
		sendWriter(func(b []byte) error { return ss.Send(&mcpv1.LogChunk{Data: b}) }))
}

// NodeStatus implements AgentService.NodeStatus.
func (h *agentServer) NodeStatus(ctx context.Context, _ *mcpv1.NodeStatusRequest) (*mcpv1.NodeStatusResponse, error) {
	st, err := h.a.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcpv1.NodeStatusResponse{
		Node: st.Node, Version: st.Version, StartedAt: timestamppb.New(st.StartedAt), Runtime: st.Runtime.Name,
		RuntimeVersion: st.Runtime.Version, Services: int32(st.Services), Containers: int32(st.Containers), //nolint:gosec // counts fit
		Running: int32(st.Running), Boot: st.Boot, Drift: st.Drift, Address: st.Address, Domain: st.Domain, //nolint:gosec // counts fit
	}
	for _, a := range st.Alerts {
		out.Alerts = append(out.Alerts, alertPB(a))
	}
	return out, nil
}

type dataServer struct {
	mcpv1.UnsafeDataServiceServer
	a *agent.Agent
}

var _ mcpv1.DataServiceServer = (*dataServer)(nil)

// chunkReader reads the data messages after a header.
type chunkReader struct {
	recv func() ([]byte, error)
	buf  []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		b, err := r.recv()
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		r.buf = b
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// PushFile implements DataService.PushFile.
func (h *dataServer) PushFile(ss mcpv1.DataService_PushFileServer) error {
	first, err := ss.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return apierr.InvalidField("header", "the first message must be the header")
	}
	r := &chunkReader{recv: func() ([]byte, error) {
		m, err := ss.Recv()
		if err != nil {
			return nil, err
		}
		if m.GetHeader() != nil {
			return nil, apierr.InvalidField("header", "a second header")
		}
		return m.GetData(), nil
	}}
	path, n, err := h.a.PushFile(ss.Context(), hdr.GetService(), hdr.GetPath(), fs.FileMode(hdr.GetMode()), r)
	if err != nil {
		return err
	}
	return ss.SendAndClose(&mcpv1.PushFileResponse{Path: path, Size: n})
}

// PullFile implements DataService.PullFile.
func (h *dataServer) PullFile(req *mcpv1.PullFileRequest, ss mcpv1.DataService_PullFileServer) error {
	return h.a.PullFile(ss.Context(), req.GetService(), req.GetPath(),
		sendWriter(func(b []byte) error { return ss.Send(&mcpv1.DataChunk{Data: b}) }))
}

// ExportServiceData implements DataService.ExportServiceData.
func (h *dataServer) ExportServiceData(req *mcpv1.ExportServiceDataRequest, ss mcpv1.DataService_ExportServiceDataServer) error {
	tok, _ := auth.TokenFromGRPC(ss.Context())
	return h.a.Export(ss.Context(), req.GetService(), tok,
		sendWriter(func(b []byte) error { return ss.Send(&mcpv1.DataChunk{Data: b}) }))
}

// ImportServiceData implements DataService.ImportServiceData.
func (h *dataServer) ImportServiceData(ss mcpv1.DataService_ImportServiceDataServer) error {
	first, err := ss.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return apierr.InvalidField("header", "the first message must be the header")
	}
	r := &chunkReader{recv: func() ([]byte, error) {
		m, err := ss.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetData(), nil
	}}
	path, n, err := h.a.Import(ss.Context(), hdr.GetService(), hdr.GetReplace(), r)
	if err != nil {
		return err
	}
	return ss.SendAndClose(&mcpv1.ImportServiceDataResponse{Path: path, Bytes: n})
}
