package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// passkeyGRPC implements mciasv1.PasskeyServiceServer: managing stored
// passkeys. The registration and login ceremonies are browser-only (they
// need navigator.credentials and are bound to the web origin) and exist as
// hand-written REST endpoints only; see webauthn.go.
type passkeyGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafePasskeyServiceServer
	grpcHandlers
}

var _ mciasv1.PasskeyServiceServer = passkeyGRPC{}

func passkeyPB(p identity.PasskeyInfo) *mciasv1.Passkey {
	out := &mciasv1.Passkey{
		Id: p.ID, Name: p.Name, CreatedAt: timestamppb.New(p.CreatedAt), BackupEligible: p.BackupEligible,
		BackupState: p.BackupState, Transports: p.Transports, Aaguid: p.AAGUID, AttestationType: p.AttestationType,
	}
	if p.LastUsedAt != nil {
		out.LastUsedAt = timestamppb.New(*p.LastUsedAt)
	}
	return out
}

// ListPasskeys implements PasskeyService.ListPasskeys.
func (h passkeyGRPC) ListPasskeys(ctx context.Context, req *mciasv1.ListPasskeysRequest) (*mciasv1.ListPasskeysResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	list, err := h.svc.ListPasskeys(ctx, c, id)
	if err != nil {
		return nil, err
	}
	out := &mciasv1.ListPasskeysResponse{Passkeys: make([]*mciasv1.Passkey, 0, len(list))}
	for _, p := range list {
		out.Passkeys = append(out.Passkeys, passkeyPB(p))
	}
	return out, nil
}

// RenamePasskey implements PasskeyService.RenamePasskey.
func (h passkeyGRPC) RenamePasskey(ctx context.Context, req *mciasv1.RenamePasskeyRequest) (*mciasv1.RenamePasskeyResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	p, err := h.svc.RenamePasskey(ctx, c, id, req.GetCredentialId(), req.GetName())
	if err != nil {
		return nil, err
	}
	return &mciasv1.RenamePasskeyResponse{Passkey: passkeyPB(p)}, nil
}

// DeletePasskey implements PasskeyService.DeletePasskey.
func (h passkeyGRPC) DeletePasskey(ctx context.Context, req *mciasv1.DeletePasskeyRequest) (*mciasv1.DeletePasskeyResponse, error) {
	c, id, err := h.account(ctx, req.GetAccount())
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeletePasskey(ctx, c, id, req.GetCredentialId()); err != nil {
		return nil, err
	}
	return &mciasv1.DeletePasskeyResponse{}, nil
}
