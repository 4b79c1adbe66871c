package server

import (
	"context"
	"math"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// sysGRPC implements mcv1.SysServiceServer.
type sysGRPC struct {
	// The Unsafe marker instead of the Unimplemented struct: a new RPC is
	// a compile error here, not an Unimplemented answer at run time.
	mcv1.UnsafeSysServiceServer
	*app
}

var _ mcv1.SysServiceServer = sysGRPC{}

func (h sysGRPC) status(ctx context.Context) (*mcv1.StatusResponse, error) {
	s, err := h.barrier.Status(ctx)
	if err != nil {
		return nil, err
	}
	return &mcv1.StatusResponse{
		Initialized: s.Initialized, Sealed: s.Sealed, KeyVersion: s.KeyVersion,
		UnsealRetryAfterSeconds: int64(math.Ceil(s.RetryAfter.Seconds())), Version: h.version,
	}, nil
}

// Status implements SysService.Status.
func (h sysGRPC) Status(ctx context.Context, _ *mcv1.StatusRequest) (*mcv1.StatusResponse, error) {
	return h.status(ctx)
}

// Init implements SysService.Init.
func (h sysGRPC) Init(ctx context.Context, req *mcv1.InitRequest) (*mcv1.InitResponse, error) {
	pw := []byte(req.GetPassword())
	defer clear(pw)
	if err := h.barrier.Init(ctx, pw); err != nil {
		return nil, err
	}
	h.logger.Info("initialized", "by", caller(ctx).Username)
	st, err := h.status(ctx)
	return &mcv1.InitResponse{Status: st}, err
}

// Unseal implements SysService.Unseal.
func (h sysGRPC) Unseal(ctx context.Context, req *mcv1.UnsealRequest) (*mcv1.UnsealResponse, error) {
	pw := []byte(req.GetPassword())
	defer clear(pw)
	if err := h.barrier.Unseal(ctx, pw); err != nil {
		return nil, err
	}
	st, err := h.status(ctx)
	return &mcv1.UnsealResponse{Status: st}, err
}

// Seal implements SysService.Seal.
func (h sysGRPC) Seal(ctx context.Context, _ *mcv1.SealRequest) (*mcv1.SealResponse, error) {
	h.barrier.Seal()
	h.logger.Info("sealed by request", "by", caller(ctx).Username)
	st, err := h.status(ctx)
	return &mcv1.SealResponse{Status: st}, err
}

// ChangePassword implements SysService.ChangePassword.
func (h sysGRPC) ChangePassword(ctx context.Context, req *mcv1.ChangePasswordRequest) (*mcv1.ChangePasswordResponse, error) {
	cur, next := []byte(req.GetCurrentPassword()), []byte(req.GetNewPassword())
	defer clear(cur)
	defer clear(next)
	if err := h.barrier.ChangePassword(ctx, cur, next); err != nil {
		return nil, err
	}
	return &mcv1.ChangePasswordResponse{}, nil
}

// Rotate implements SysService.Rotate.
func (h sysGRPC) Rotate(ctx context.Context, req *mcv1.RotateRequest) (*mcv1.RotateResponse, error) {
	pw := []byte(req.GetPassword())
	defer clear(pw)
	v, err := h.barrier.Rotate(ctx, pw)
	if err != nil {
		return nil, err
	}
	return &mcv1.RotateResponse{KeyVersion: v}, nil
}

func mountPB(m store.MountRow) *mcv1.Mount {
	return &mcv1.Mount{Name: m.Name, Type: m.Type, Id: m.ID, CreatedAt: timestamppb.New(m.CreatedAt)}
}

// ListMounts implements SysService.ListMounts.
func (h sysGRPC) ListMounts(ctx context.Context, _ *mcv1.ListMountsRequest) (*mcv1.ListMountsResponse, error) {
	rows, err := h.mounts.List(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListMountsResponse{Mounts: make([]*mcv1.Mount, 0, len(rows))}
	for _, m := range rows {
		out.Mounts = append(out.Mounts, mountPB(m))
	}
	return out, nil
}

// CreateMount implements SysService.CreateMount.
func (h sysGRPC) CreateMount(ctx context.Context, req *mcv1.CreateMountRequest) (*mcv1.CreateMountResponse, error) {
	m, err := h.mounts.Create(ctx, req.GetName(), req.GetType())
	if err != nil {
		return nil, err
	}
	h.logger.Info("mount created", "mount", m.Name, "type", m.Type, "by", caller(ctx).Username)
	return &mcv1.CreateMountResponse{Mount: mountPB(m)}, nil
}

// DeleteMount implements SysService.DeleteMount.
func (h sysGRPC) DeleteMount(ctx context.Context, req *mcv1.DeleteMountRequest) (*mcv1.DeleteMountResponse, error) {
	if err := h.mounts.Delete(ctx, req.GetName()); err != nil {
		return nil, err
	}
	h.logger.Info("mount deleted", "mount", req.GetName(), "by", caller(ctx).Username)
	return &mcv1.DeleteMountResponse{}, nil
}
