package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/u2u"
)

// u2uGRPC implements mcv1.U2UServiceServer over u2u.Service.
type u2uGRPC struct {
	mcv1.UnsafeU2UServiceServer
	*app
}

var _ mcv1.U2UServiceServer = u2uGRPC{}

func u2uKeysPB(k u2u.UserKeys) *mcv1.U2UUserKeys {
	out := &mcv1.U2UUserKeys{Username: k.Username, LatestVersion: i32(k.LatestVersion)}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, &mcv1.U2UKeyVersion{Version: i32(v.Version), PublicKey: v.PublicKey, CreatedAt: timestamppb.New(v.CreatedAt)})
	}
	return out
}

func u2uKeysResponse(k u2u.UserKeys, err error) (*mcv1.U2UKeysResponse, error) {
	if err != nil {
		return nil, err
	}
	return &mcv1.U2UKeysResponse{Keys: u2uKeysPB(k)}, nil
}

// CreateKey implements U2UService.CreateKey.
func (h u2uGRPC) CreateKey(ctx context.Context, req *mcv1.U2UCreateKeyRequest) (*mcv1.U2UKeysResponse, error) {
	return u2uKeysResponse(h.u2u.CreateKey(ctx, caller(ctx), req.GetMount()))
}

// RotateKey implements U2UService.RotateKey.
func (h u2uGRPC) RotateKey(ctx context.Context, req *mcv1.U2URotateKeyRequest) (*mcv1.U2UKeysResponse, error) {
	return u2uKeysResponse(h.u2u.RotateKey(ctx, caller(ctx), req.GetMount()))
}

// GetKey implements U2UService.GetKey.
func (h u2uGRPC) GetKey(ctx context.Context, req *mcv1.U2UGetKeyRequest) (*mcv1.U2UKeysResponse, error) {
	return u2uKeysResponse(h.u2u.GetKey(ctx, caller(ctx), req.GetMount(), req.GetUsername()))
}

// ListKeys implements U2UService.ListKeys.
func (h u2uGRPC) ListKeys(ctx context.Context, req *mcv1.U2UListKeysRequest) (*mcv1.U2UListKeysResponse, error) {
	list, err := h.u2u.ListKeys(ctx, caller(ctx), req.GetMount())
	if err != nil {
		return nil, err
	}
	out := &mcv1.U2UListKeysResponse{Keys: make([]*mcv1.U2UUserKeys, 0, len(list))}
	for _, k := range list {
		out.Keys = append(out.Keys, u2uKeysPB(k))
	}
	return out, nil
}

// Send implements U2UService.Send.
func (h u2uGRPC) Send(ctx context.Context, req *mcv1.U2USendRequest) (*mcv1.U2USendResponse, error) {
	s, err := h.u2u.Send(ctx, caller(ctx), req.GetMount(), u2u.SendRequest{
		Recipient: req.GetRecipient(), Plaintext: req.GetPlaintext(), AssociatedData: req.GetAssociatedData(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.U2USendResponse{
		Message: s.Message, SenderKeyVersion: i32(s.SenderKeyVersion), RecipientKeyVersion: i32(s.RecipientKeyVersion),
		SentAt: timestamppb.New(s.SentAt),
	}, nil
}

// Open implements U2UService.Open.
func (h u2uGRPC) Open(ctx context.Context, req *mcv1.U2UOpenRequest) (*mcv1.U2UOpenResponse, error) {
	o, err := h.u2u.Open(ctx, caller(ctx), req.GetMount(), u2u.OpenRequest{Message: req.GetMessage(), AssociatedData: req.GetAssociatedData()})
	if err != nil {
		return nil, err
	}
	return &mcv1.U2UOpenResponse{
		Sender: o.Sender, SenderKeyVersion: i32(o.SenderKeyVersion), RecipientKeyVersion: i32(o.RecipientKeyVersion),
		SentAt: timestamppb.New(o.SentAt), Plaintext: o.Plaintext,
	}, nil
}
