package server

import (
	"context"
	"log/slog"
	"net/http"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	mcnsv1 "git.metacircular.net/metacircular/mcns/gen/mcns/v1"
	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// methodMaps classifies every MCNS RPC. Only the snapshot is admin-only at
// the interceptor: records.Service decides who may change which zone or
// record, for REST and gRPC alike, so the rule lives in one place.
func methodMaps() grpcserver.MethodMaps {
	set := func(names ...string) map[string]bool {
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	return grpcserver.MethodMaps{
		AuthRequired: set(
			mcnsv1.ZoneService_ListZones_FullMethodName,
			mcnsv1.ZoneService_CreateZone_FullMethodName,
			mcnsv1.ZoneService_GetZone_FullMethodName,
			mcnsv1.ZoneService_UpdateZone_FullMethodName,
			mcnsv1.ZoneService_DeleteZone_FullMethodName,
			mcnsv1.RecordService_ListRecords_FullMethodName,
			mcnsv1.RecordService_CreateRecord_FullMethodName,
			mcnsv1.RecordService_GetRecord_FullMethodName,
			mcnsv1.RecordService_UpdateRecord_FullMethodName,
			mcnsv1.RecordService_DeleteRecord_FullMethodName,
		),
		AdminRequired: set(snapshot.FullMethod),
	}
}

// register puts ZoneService, RecordService and the platform snapshot
// service on srv. The handlers return the domain's errors as they are:
// grpcserver turns them into statuses (mcdsl/apierr) for gRPC and REST
// alike.
func register(srv *grpcserver.Server, svc *records.Service, st *store.Store) {
	h := grpcHandlers{svc: svc}
	mcnsv1.RegisterZoneServiceServer(srv, zoneGRPC{grpcHandlers: h})
	mcnsv1.RegisterRecordServiceServer(srv, recordGRPC{grpcHandlers: h})
	snapshot.Register(srv, snapshot.NewServer(st.DB(), "", ServiceName))
}

// restStatus are the REST answers other than 200 OK.
var restStatus = map[string]int{
	mcnsv1.ZoneService_CreateZone_FullMethodName:     http.StatusCreated,
	mcnsv1.ZoneService_DeleteZone_FullMethodName:     http.StatusNoContent,
	mcnsv1.RecordService_CreateRecord_FullMethodName: http.StatusCreated,
	mcnsv1.RecordService_DeleteRecord_FullMethodName: http.StatusNoContent,
}

// restAPI is the REST face of the services registered on srv, generated
// from mcns.v1's HTTP rules (proto/mcns/v1/http.yaml).
func restAPI(srv *grpcserver.Server, logger *slog.Logger) (*gateway.Handler, error) {
	return gateway.New(srv.Local(), gateway.Options{Status: restStatus, Logger: logger},
		gateway.Service(mcnsv1.RegisterZoneServiceHandlerClient, mcnsv1.NewZoneServiceClient),
		gateway.Service(mcnsv1.RegisterRecordServiceHandlerClient, mcnsv1.NewRecordServiceClient),
	)
}

// grpcHandlers is what both service implementations share.
type grpcHandlers struct {
	svc *records.Service
}

// identity is the caller the interceptor put in the context; nil (which
// the domain refuses as unauthenticated) if there is none.
func identity(ctx context.Context) *auth.Identity {
	id, _ := auth.IdentityFrom(ctx)
	return id
}

func zonePB(z dnsdata.Zone) *mcnsv1.Zone {
	return &mcnsv1.Zone{
		Name: z.Name, PrimaryNs: z.PrimaryNS, AdminEmail: z.AdminEmail, Serial: z.Serial,
		Refresh: z.Refresh, Retry: z.Retry, Expire: z.Expire, Minimum: z.Minimum, Ttl: z.TTL,
		CreatedAt: timestamppb.New(z.CreatedAt), UpdatedAt: timestamppb.New(z.UpdatedAt),
	}
}

func recordPB(r dnsdata.Record) *mcnsv1.Record {
	return &mcnsv1.Record{
		Id: r.ID, Zone: r.Zone, Name: r.Name, Type: r.Type, Ttl: r.TTL, Value: r.Value,
		CreatedAt: timestamppb.New(r.CreatedAt), UpdatedAt: timestamppb.New(r.UpdatedAt),
	}
}

func zoneSpec(name string, f *mcnsv1.ZoneFields) dnsdata.Spec {
	return dnsdata.Spec{
		Name: name, PrimaryNS: f.GetPrimaryNs(), AdminEmail: f.GetAdminEmail(), Refresh: f.GetRefresh(),
		Retry: f.GetRetry(), Expire: f.GetExpire(), Minimum: f.GetMinimum(), TTL: f.GetTtl(),
	}
}

func recordSpec(f *mcnsv1.RecordFields) dnsdata.RecordSpec {
	return dnsdata.RecordSpec{Name: f.GetName(), Type: f.GetType(), TTL: f.GetTtl(), Value: f.GetValue()}
}

// --- ZoneService ---

// zoneGRPC implements mcnsv1.ZoneServiceServer.
type zoneGRPC struct {
	// The Unsafe marker instead of the Unimplemented struct: a new RPC is
	// a compile error here, not an Unimplemented answer at run time.
	mcnsv1.UnsafeZoneServiceServer
	grpcHandlers
}

var _ mcnsv1.ZoneServiceServer = zoneGRPC{}

// ListZones implements ZoneService.ListZones.
func (h zoneGRPC) ListZones(ctx context.Context, _ *mcnsv1.ListZonesRequest) (*mcnsv1.ListZonesResponse, error) {
	zones, err := h.svc.ListZones(ctx, identity(ctx))
	if err != nil {
		return nil, err
	}
	out := &mcnsv1.ListZonesResponse{Zones: make([]*mcnsv1.Zone, 0, len(zones))}
	for _, z := range zones {
		out.Zones = append(out.Zones, zonePB(z))
	}
	return out, nil
}

// CreateZone implements ZoneService.CreateZone.
func (h zoneGRPC) CreateZone(ctx context.Context, req *mcnsv1.CreateZoneRequest) (*mcnsv1.CreateZoneResponse, error) {
	z, err := h.svc.CreateZone(ctx, identity(ctx), dnsdata.Spec{
		Name: req.GetName(), PrimaryNS: req.GetPrimaryNs(), AdminEmail: req.GetAdminEmail(), Refresh: req.GetRefresh(),
		Retry: req.GetRetry(), Expire: req.GetExpire(), Minimum: req.GetMinimum(), TTL: req.GetTtl(),
	})
	if err != nil {
		return nil, err
	}
	return &mcnsv1.CreateZoneResponse{Zone: zonePB(z)}, nil
}

// GetZone implements ZoneService.GetZone.
func (h zoneGRPC) GetZone(ctx context.Context, req *mcnsv1.GetZoneRequest) (*mcnsv1.GetZoneResponse, error) {
	z, err := h.svc.GetZone(ctx, identity(ctx), req.GetName())
	if err != nil {
		return nil, err
	}
	return &mcnsv1.GetZoneResponse{Zone: zonePB(z)}, nil
}

// UpdateZone implements ZoneService.UpdateZone.
func (h zoneGRPC) UpdateZone(ctx context.Context, req *mcnsv1.UpdateZoneRequest) (*mcnsv1.UpdateZoneResponse, error) {
	z, err := h.svc.UpdateZone(ctx, identity(ctx), zoneSpec(req.GetName(), req.GetFields()))
	if err != nil {
		return nil, err
	}
	return &mcnsv1.UpdateZoneResponse{Zone: zonePB(z)}, nil
}

// DeleteZone implements ZoneService.DeleteZone.
func (h zoneGRPC) DeleteZone(ctx context.Context, req *mcnsv1.DeleteZoneRequest) (*mcnsv1.DeleteZoneResponse, error) {
	if err := h.svc.DeleteZone(ctx, identity(ctx), req.GetName()); err != nil {
		return nil, err
	}
	return &mcnsv1.DeleteZoneResponse{}, nil
}

// --- RecordService ---

// recordGRPC implements mcnsv1.RecordServiceServer.
type recordGRPC struct {
	mcnsv1.UnsafeRecordServiceServer
	grpcHandlers
}

var _ mcnsv1.RecordServiceServer = recordGRPC{}

// ListRecords implements RecordService.ListRecords.
func (h recordGRPC) ListRecords(ctx context.Context, req *mcnsv1.ListRecordsRequest) (*mcnsv1.ListRecordsResponse, error) {
	list, err := h.svc.ListRecords(ctx, identity(ctx), req.GetZone(), dnsdata.Filter{Name: req.GetName(), Type: req.GetType()})
	if err != nil {
		return nil, err
	}
	out := &mcnsv1.ListRecordsResponse{Records: make([]*mcnsv1.Record, 0, len(list))}
	for _, r := range list {
		out.Records = append(out.Records, recordPB(r))
	}
	return out, nil
}

// CreateRecord implements RecordService.CreateRecord.
func (h recordGRPC) CreateRecord(ctx context.Context, req *mcnsv1.CreateRecordRequest) (*mcnsv1.CreateRecordResponse, error) {
	r, err := h.svc.CreateRecord(ctx, identity(ctx), req.GetZone(), recordSpec(req.GetRecord()))
	if err != nil {
		return nil, err
	}
	return &mcnsv1.CreateRecordResponse{Record: recordPB(r)}, nil
}

// GetRecord implements RecordService.GetRecord.
func (h recordGRPC) GetRecord(ctx context.Context, req *mcnsv1.GetRecordRequest) (*mcnsv1.GetRecordResponse, error) {
	r, err := h.svc.GetRecord(ctx, identity(ctx), req.GetZone(), req.GetId())
	if err != nil {
		return nil, err
	}
	return &mcnsv1.GetRecordResponse{Record: recordPB(r)}, nil
}

// UpdateRecord implements RecordService.UpdateRecord.
func (h recordGRPC) UpdateRecord(ctx context.Context, req *mcnsv1.UpdateRecordRequest) (*mcnsv1.UpdateRecordResponse, error) {
	r, err := h.svc.UpdateRecord(ctx, identity(ctx), req.GetZone(), req.GetId(), recordSpec(req.GetRecord()))
	if err != nil {
		return nil, err
	}
	return &mcnsv1.UpdateRecordResponse{Record: recordPB(r)}, nil
}

// DeleteRecord implements RecordService.DeleteRecord.
func (h recordGRPC) DeleteRecord(ctx context.Context, req *mcnsv1.DeleteRecordRequest) (*mcnsv1.DeleteRecordResponse, error) {
	if err := h.svc.DeleteRecord(ctx, identity(ctx), req.GetZone(), req.GetId()); err != nil {
		return nil, err
	}
	return &mcnsv1.DeleteRecordResponse{}, nil
}
