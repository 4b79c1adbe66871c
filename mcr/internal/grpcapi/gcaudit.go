package grpcapi

import (
	"context"
	"fmt"

	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
	"git.metacircular.net/metacircular/mcr/internal/gc"
	"git.metacircular.net/metacircular/mcr/internal/meta"
)

// gcGRPC implements mcrv1.GCServiceServer.
type gcGRPC struct {
	mcrv1.UnsafeGCServiceServer
	d Deps
}

var _ mcrv1.GCServiceServer = gcGRPC{}

// ReportPB is a GC report on the wire.
func ReportPB(r gc.Report) *mcrv1.GCReport {
	out := &mcrv1.GCReport{DryRun: r.DryRun, StartedAt: tsOf(r.StartedAt), FinishedAt: tsOf(r.FinishedAt),
		BytesFreed: r.BytesFreed, BlobsKept: r.BlobsKept, Uploads: r.Uploads, OrphanFiles: r.OrphanFiles,
		Repositories: r.Repositories, Blobs: []*mcrv1.GCBlob{}}
	for _, b := range r.Blobs {
		out.Blobs = append(out.Blobs, &mcrv1.GCBlob{Digest: b.Digest, SizeBytes: b.Size})
	}
	return out
}

// RunGC implements GCService.RunGC: progress messages (at most one per
// percent of a stage), then the report.
func (h gcGRPC) RunGC(req *mcrv1.RunGCRequest, stream mcrv1.GCService_RunGCServer) error {
	ctx := stream.Context()
	last := map[string]int{}
	var sendErr error
	rep, err := h.d.GC.Run(ctx, gc.Options{DryRun: req.GetDryRun(), Progress: func(stage string, done, total int) {
		pct := 100
		if total > 0 {
			pct = done * 100 / total
		}
		if p, ok := last[stage]; ok && p == pct && done != total {
			return
		}
		last[stage] = pct
		if sendErr == nil {
			sendErr = stream.Send(&mcrv1.RunGCResponse{Event: &mcrv1.RunGCResponse_Progress{Progress: &mcrv1.GCProgress{
				Stage: stage, Done: int64(done), Total: int64(total)}}})
		}
	}})
	if err != nil {
		return err
	}
	if !rep.DryRun {
		_ = h.d.Store.AppendEvent(context.WithoutCancel(ctx), meta.Event{Actor: actor(ctx), Action: "gc",
			Detail: fmt.Sprintf("deleted %d blobs (%d bytes), %d uploads, %d orphan files, %d repositories",
				len(rep.Blobs), rep.BytesFreed, len(rep.Uploads), len(rep.OrphanFiles), len(rep.Repositories))})
	}
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&mcrv1.RunGCResponse{Event: &mcrv1.RunGCResponse_Report{Report: ReportPB(rep)}})
}

// auditGRPC implements mcrv1.AuditServiceServer.
type auditGRPC struct {
	mcrv1.UnsafeAuditServiceServer
	d Deps
}

var _ mcrv1.AuditServiceServer = auditGRPC{}

// ListEvents implements AuditService.ListEvents.
func (h auditGRPC) ListEvents(ctx context.Context, req *mcrv1.ListEventsRequest) (*mcrv1.ListEventsResponse, error) {
	f := meta.AuditFilter{Repository: req.GetRepository(), Actor: req.GetActor(), Action: req.GetAction(),
		BeforeID: req.GetBeforeId(), Limit: int(req.GetLimit())}
	if req.GetSince() != nil {
		f.Since = req.GetSince().AsTime()
	}
	evs, err := h.d.Store.AuditEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &mcrv1.ListEventsResponse{Events: []*mcrv1.Event{}}
	for _, e := range evs {
		out.Events = append(out.Events, &mcrv1.Event{Id: e.ID, At: tsOf(e.At), Actor: e.Actor, Action: e.Action,
			Repository: e.Repository, Reference: e.Reference, Digest: e.Digest, Remote: e.Remote, Detail: e.Detail})
	}
	return out, nil
}
