package server

import (
	"context"
	"log/slog"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/sshca"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/transit"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/u2u"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// engineGRPC implements mcv1.EngineServiceServer.
type engineGRPC struct {
	mcv1.UnsafeEngineServiceServer
	*app
}

var _ mcv1.EngineServiceServer = engineGRPC{}

// Request implements EngineService.Request.
func (h engineGRPC) Request(ctx context.Context, req *mcv1.EngineRequest) (*mcv1.EngineResponse, error) {
	out, err := h.mounts.Request(ctx, req.GetMount(), engine.Request{
		Caller: caller(ctx), Operation: req.GetOperation(), Path: req.GetPath(), Data: req.GetData().AsMap(),
	})
	if err != nil {
		return nil, err
	}
	data, err := structpb.NewStruct(out)
	if err != nil {
		return nil, err
	}
	return &mcv1.EngineResponse{Data: data}, nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// engines are the engine types beside the CA (which the ACME server
// also needs, so Build makes it itself).
type engines struct {
	ssh     *sshca.Service
	transit *transit.Service
	u2u     *u2u.Service
}

// newEngines builds the SSH CA, transit and user-to-user engines and
// registers them, so their mount types ("ssh", "transit", "u2u") can be
// created and reached by the generic request. The SSH CA publishes its
// public key and KRL to the store's clear table.
func newEngines(reg *engine.Registry, mounts *mount.Table, st *store.Store, pol *policy.Engine, sealed func() bool, logger *slog.Logger) engines {
	e := engines{
		ssh:     sshca.New(sshca.Deps{Mounts: mounts, Authz: pol, Sealed: sealed, Public: st, Logger: logger}),
		transit: transit.New(transit.Deps{Mounts: mounts, Authz: pol, Sealed: sealed, Logger: logger}),
		u2u:     u2u.New(u2u.Deps{Mounts: mounts, Authz: pol, Sealed: sealed, Logger: logger}),
	}
	reg.Register(e.ssh)
	reg.Register(e.transit)
	reg.Register(e.u2u)
	return e
}
