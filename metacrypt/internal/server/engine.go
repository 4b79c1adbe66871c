package server

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/types/known/structpb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
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
