package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/transit"
)

// transitGRPC implements mcv1.TransitServiceServer over transit.Service.
type transitGRPC struct {
	mcv1.UnsafeTransitServiceServer
	*app
}

var _ mcv1.TransitServiceServer = transitGRPC{}

// i32 narrows a key version or count, which the engine bounds far below
// 2^31, for the wire.
func i32(n int) int32 { return int32(n) } //nolint:gosec // versions < 2^31 (transit.Parse)

func transitKeyPB(k transit.KeyInfo) *mcv1.TransitKeyResponse {
	out := &mcv1.TransitKey{
		Name: k.Name, Type: string(k.Type), Derived: k.Derived, Exportable: k.Exportable, DeletionAllowed: k.DeletionAllowed,
		LatestVersion: i32(k.LatestVersion), MinDecryptionVersion: i32(k.MinDecryptionVersion),
		MinEncryptionVersion: i32(k.MinEncryptionVersion), CreatedAt: timestamppb.New(k.CreatedAt),
	}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, &mcv1.TransitKeyVersion{Version: i32(v.Version), CreatedAt: timestamppb.New(v.CreatedAt), PublicKeyPem: v.PublicKeyPEM})
	}
	return &mcv1.TransitKeyResponse{Key: out}
}

func optionalInt(p *int32) *int {
	if p == nil {
		return nil
	}
	n := int(*p)
	return &n
}

func batchPB(rs []transit.BatchResult, err error) (*mcv1.TransitBatchResponse, error) {
	if err != nil {
		return nil, err
	}
	out := &mcv1.TransitBatchResponse{Results: make([]*mcv1.TransitBatchResult, len(rs))}
	for i, r := range rs {
		out.Results[i] = &mcv1.TransitBatchResult{Ciphertext: r.Ciphertext, Plaintext: r.Plaintext, KeyVersion: i32(r.KeyVersion)}
		if r.Err != nil {
			d := apierr.Describe(r.Err)
			out.Results[i].Error, out.Results[i].Field = d.Message, d.Field
		}
	}
	return out, nil
}

func decryptItems(in []*mcv1.TransitDecryptItem) []transit.DecryptItem {
	out := make([]transit.DecryptItem, len(in))
	for i, it := range in {
		out[i] = transit.DecryptItem{Ciphertext: it.GetCiphertext(), AssociatedData: it.GetAssociatedData(), Context: it.GetContext()}
	}
	return out
}

// CreateKey implements TransitService.CreateKey.
func (h transitGRPC) CreateKey(ctx context.Context, req *mcv1.TransitCreateKeyRequest) (*mcv1.TransitKeyResponse, error) {
	k, err := h.transit.CreateKey(ctx, caller(ctx), req.GetMount(), transit.CreateKeyRequest{
		Name: req.GetName(), Type: req.GetType(), Derived: req.GetDerived(), Exportable: req.GetExportable(),
	})
	if err != nil {
		return nil, err
	}
	return transitKeyPB(k), nil
}

// GetKey implements TransitService.GetKey.
func (h transitGRPC) GetKey(ctx context.Context, req *mcv1.TransitKeyRequest) (*mcv1.TransitKeyResponse, error) {
	k, err := h.transit.GetKey(ctx, caller(ctx), req.GetMount(), req.GetName())
	if err != nil {
		return nil, err
	}
	return transitKeyPB(k), nil
}

// ListKeys implements TransitService.ListKeys.
func (h transitGRPC) ListKeys(ctx context.Context, req *mcv1.TransitListKeysRequest) (*mcv1.TransitListKeysResponse, error) {
	keys, err := h.transit.ListKeys(ctx, caller(ctx), req.GetMount())
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitListKeysResponse{Keys: keys}, nil
}

// UpdateKeyConfig implements TransitService.UpdateKeyConfig.
func (h transitGRPC) UpdateKeyConfig(ctx context.Context, req *mcv1.TransitKeyConfigRequest) (*mcv1.TransitKeyResponse, error) {
	k, err := h.transit.UpdateKeyConfig(ctx, caller(ctx), req.GetMount(), transit.KeyConfigRequest{
		Name: req.GetName(), MinDecryptionVersion: optionalInt(req.MinDecryptionVersion),
		MinEncryptionVersion: optionalInt(req.MinEncryptionVersion), DeletionAllowed: req.DeletionAllowed,
	})
	if err != nil {
		return nil, err
	}
	return transitKeyPB(k), nil
}

// RotateKey implements TransitService.RotateKey.
func (h transitGRPC) RotateKey(ctx context.Context, req *mcv1.TransitKeyRequest) (*mcv1.TransitKeyResponse, error) {
	k, err := h.transit.RotateKey(ctx, caller(ctx), req.GetMount(), req.GetName())
	if err != nil {
		return nil, err
	}
	return transitKeyPB(k), nil
}

// DeleteKey implements TransitService.DeleteKey.
func (h transitGRPC) DeleteKey(ctx context.Context, req *mcv1.TransitKeyRequest) (*mcv1.TransitDeleteKeyResponse, error) {
	if err := h.transit.DeleteKey(ctx, caller(ctx), req.GetMount(), req.GetName()); err != nil {
		return nil, err
	}
	return &mcv1.TransitDeleteKeyResponse{}, nil
}

// ExportKey implements TransitService.ExportKey.
func (h transitGRPC) ExportKey(ctx context.Context, req *mcv1.TransitExportKeyRequest) (*mcv1.TransitExportKeyResponse, error) {
	k, err := h.transit.ExportKey(ctx, caller(ctx), req.GetMount(), req.GetName(), int(req.GetVersion()))
	if err != nil {
		return nil, err
	}
	out := &mcv1.TransitExportKeyResponse{Name: k.Name, Type: string(k.Type)}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, &mcv1.TransitExportedVersion{Version: i32(v.Version), Key: v.Key, HmacKey: v.HMACKey})
	}
	return out, nil
}

// Encrypt implements TransitService.Encrypt.
func (h transitGRPC) Encrypt(ctx context.Context, req *mcv1.TransitEncryptRequest) (*mcv1.TransitCiphertext, error) {
	ct, err := h.transit.Encrypt(ctx, caller(ctx), req.GetMount(), transit.EncryptRequest{
		Key: req.GetKey(), Plaintext: req.GetPlaintext(), AssociatedData: req.GetAssociatedData(), Context: req.GetContext(),
		KeyVersion: int(req.GetKeyVersion()),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitCiphertext{Ciphertext: ct.Ciphertext, KeyVersion: i32(ct.KeyVersion)}, nil
}

// Decrypt implements TransitService.Decrypt.
func (h transitGRPC) Decrypt(ctx context.Context, req *mcv1.TransitDecryptRequest) (*mcv1.TransitPlaintext, error) {
	pt, err := h.transit.Decrypt(ctx, caller(ctx), req.GetMount(), transit.DecryptRequest{
		Key: req.GetKey(), Ciphertext: req.GetCiphertext(), AssociatedData: req.GetAssociatedData(), Context: req.GetContext(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitPlaintext{Plaintext: pt.Plaintext, KeyVersion: i32(pt.KeyVersion)}, nil
}

// Rewrap implements TransitService.Rewrap.
func (h transitGRPC) Rewrap(ctx context.Context, req *mcv1.TransitRewrapRequest) (*mcv1.TransitCiphertext, error) {
	ct, err := h.transit.Rewrap(ctx, caller(ctx), req.GetMount(), transit.RewrapRequest{
		Key: req.GetKey(), Ciphertext: req.GetCiphertext(), AssociatedData: req.GetAssociatedData(), Context: req.GetContext(),
		KeyVersion: int(req.GetKeyVersion()),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitCiphertext{Ciphertext: ct.Ciphertext, KeyVersion: i32(ct.KeyVersion)}, nil
}

// EncryptBatch implements TransitService.EncryptBatch.
func (h transitGRPC) EncryptBatch(ctx context.Context, req *mcv1.TransitEncryptBatchRequest) (*mcv1.TransitBatchResponse, error) {
	items := make([]transit.EncryptItem, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = transit.EncryptItem{Plaintext: it.GetPlaintext(), AssociatedData: it.GetAssociatedData(), Context: it.GetContext()}
	}
	return batchPB(h.transit.EncryptBatch(ctx, caller(ctx), req.GetMount(), transit.EncryptBatchRequest{
		Key: req.GetKey(), KeyVersion: int(req.GetKeyVersion()), Items: items,
	}))
}

// DecryptBatch implements TransitService.DecryptBatch.
func (h transitGRPC) DecryptBatch(ctx context.Context, req *mcv1.TransitDecryptBatchRequest) (*mcv1.TransitBatchResponse, error) {
	return batchPB(h.transit.DecryptBatch(ctx, caller(ctx), req.GetMount(), transit.DecryptBatchRequest{
		Key: req.GetKey(), Items: decryptItems(req.GetItems()),
	}))
}

// RewrapBatch implements TransitService.RewrapBatch.
func (h transitGRPC) RewrapBatch(ctx context.Context, req *mcv1.TransitRewrapBatchRequest) (*mcv1.TransitBatchResponse, error) {
	return batchPB(h.transit.RewrapBatch(ctx, caller(ctx), req.GetMount(), transit.RewrapBatchRequest{
		Key: req.GetKey(), KeyVersion: int(req.GetKeyVersion()), Items: decryptItems(req.GetItems()),
	}))
}

// GenerateDataKey implements TransitService.GenerateDataKey.
func (h transitGRPC) GenerateDataKey(ctx context.Context, req *mcv1.TransitDataKeyRequest) (*mcv1.TransitDataKey, error) {
	dk, err := h.transit.GenerateDataKey(ctx, caller(ctx), req.GetMount(), transit.DataKeyRequest{
		Key: req.GetKey(), Bits: int(req.GetBits()), IncludePlaintext: req.GetIncludePlaintext(),
		AssociatedData: req.GetAssociatedData(), Context: req.GetContext(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitDataKey{Ciphertext: dk.Ciphertext, KeyVersion: i32(dk.KeyVersion), Plaintext: dk.Plaintext}, nil
}

// Sign implements TransitService.Sign.
func (h transitGRPC) Sign(ctx context.Context, req *mcv1.TransitSignRequest) (*mcv1.TransitSignature, error) {
	sig, err := h.transit.Sign(ctx, caller(ctx), req.GetMount(), transit.SignRequest{
		Key: req.GetKey(), Input: req.GetInput(), Prehashed: req.GetPrehashed(), KeyVersion: int(req.GetKeyVersion()),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitSignature{Signature: sig.Signature, KeyVersion: i32(sig.KeyVersion)}, nil
}

// Verify implements TransitService.Verify.
func (h transitGRPC) Verify(ctx context.Context, req *mcv1.TransitVerifyRequest) (*mcv1.TransitVerifyResponse, error) {
	ok, err := h.transit.Verify(ctx, caller(ctx), req.GetMount(), transit.VerifyRequest{
		Key: req.GetKey(), Input: req.GetInput(), Prehashed: req.GetPrehashed(), Signature: req.GetSignature(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitVerifyResponse{Valid: ok}, nil
}

// HMAC implements TransitService.HMAC.
func (h transitGRPC) HMAC(ctx context.Context, req *mcv1.TransitHMACRequest) (*mcv1.TransitHMAC, error) {
	m, err := h.transit.HMAC(ctx, caller(ctx), req.GetMount(), transit.HMACRequest{
		Key: req.GetKey(), Input: req.GetInput(), Algorithm: req.GetAlgorithm(), KeyVersion: int(req.GetKeyVersion()),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitHMAC{Hmac: m.HMAC, KeyVersion: i32(m.KeyVersion)}, nil
}

// VerifyHMAC implements TransitService.VerifyHMAC.
func (h transitGRPC) VerifyHMAC(ctx context.Context, req *mcv1.TransitVerifyHMACRequest) (*mcv1.TransitVerifyResponse, error) {
	ok, err := h.transit.VerifyHMAC(ctx, caller(ctx), req.GetMount(), transit.VerifyHMACRequest{
		Key: req.GetKey(), Input: req.GetInput(), Algorithm: req.GetAlgorithm(), HMAC: req.GetHmac(),
	})
	if err != nil {
		return nil, err
	}
	return &mcv1.TransitVerifyResponse{Valid: ok}, nil
}
