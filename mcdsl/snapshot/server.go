package snapshot

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/db"
	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
)

// FullMethod is the gRPC method name of Snapshot, for a service's
// grpcserver admin map: snapshots are for operators only.
const FullMethod = mcdslv1.SnapshotService_Snapshot_FullMethodName

// Server implements mcdslv1.SnapshotServiceServer for one service's
// database.
type Server struct {
	// UnsafeSnapshotServiceServer is the generator's opt-out from embedding
	// UnimplementedSnapshotServiceServer: an RPC added to the service
	// becomes a compile error here instead of an Unimplemented answer at
	// run time. The field stays nil; only its unexported marker method is
	// used, and only by the type system.
	mcdslv1.UnsafeSnapshotServiceServer

	db      *db.DB
	dir     string
	service string
}

var _ mcdslv1.SnapshotServiceServer = (*Server)(nil)

// NewServer returns a Server that snapshots d into dir (the backups
// directory beside the database when empty) under the file name prefix
// service, exactly as Take does.
func NewServer(d *db.DB, dir, service string) *Server {
	return &Server{db: d, dir: dir, service: service}
}

// Snapshot takes a snapshot and reports where it was written.
func (s *Server) Snapshot(ctx context.Context, _ *mcdslv1.SnapshotRequest) (*mcdslv1.SnapshotResponse, error) {
	res, err := Take(ctx, s.db, s.dir, s.service)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, status.FromContextError(ctxErr).Err()
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &mcdslv1.SnapshotResponse{
		Path:      res.Path,
		SizeBytes: res.Size,
		CreatedAt: timestamppb.New(res.CreatedAt),
	}, nil
}

// Register adds srv to the gRPC server s (a *grpc.Server or anything else
// that registers services).
func Register(s grpc.ServiceRegistrar, srv *Server) {
	mcdslv1.RegisterSnapshotServiceServer(s, srv)
}
