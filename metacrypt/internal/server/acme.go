package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/kvstore"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/validate"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// acmeMounts is the mount table as the ACME server sees it: CA mounts
// only.
type acmeMounts struct{ t *mount.Table }

// Resolve implements acme.Mounts.
func (m acmeMounts) Resolve(ctx context.Context, name string) (engine.Mount, error) {
	mt, err := m.t.Resolve(ctx, name)
	if err != nil {
		return engine.Mount{}, err
	}
	if mt.Type != ca.Type {
		return engine.Mount{}, fmt.Errorf("%w: mount %s is not a CA", engine.ErrNotFound, name)
	}
	return mt, nil
}

// Names implements acme.Mounts.
func (m acmeMounts) Names(ctx context.Context) ([]string, error) {
	rows, err := m.t.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if r.Type == ca.Type {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// newACME builds the ACME server's domain from [acme].
func newACME(cfg ACMEConfig, mounts *mount.Table, caSvc *ca.Service, b *barrier.Barrier, logger *slog.Logger) *acme.Service {
	network := &validate.Net{Resolvers: cfg.Resolvers, HTTPPort: cfg.HTTP01Port, TLSPort: cfg.TLSALPN01Port}
	return acme.New(acme.Deps{
		Mounts: acmeMounts{t: mounts}, NewStore: kvstore.New, CA: caSvc, Sealed: b.Sealed, Logger: logger,
		Validator: validate.Validator{Net: network, HTTPPort: cfg.HTTP01Port, TLSPort: cfg.TLSALPN01Port},
		Config: acme.Config{
			OrderLifetime: cfg.OrderLifetime.Duration, ValidationAttempts: cfg.ValidationAttempts,
			ValidationBackoff: cfg.ValidationBackoff.Duration, ValidationTimeout: cfg.ValidationTimeout.Duration,
		},
	})
}

// acmeGRPC implements mcv1.ACMEServiceServer.
type acmeGRPC struct {
	mcv1.UnsafeACMEServiceServer
	*app
}

var _ mcv1.ACMEServiceServer = acmeGRPC{}

func optTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func eabPB(mount string, e acme.EAB, now time.Time) *mcv1.EAB {
	status := "usable"
	switch {
	case !e.RevokedAt.IsZero():
		status = "revoked"
	case !e.UsedAt.IsZero():
		status = "used"
	case !e.Usable(now):
		status = "expired"
	}
	return &mcv1.EAB{
		Kid: e.KID, Mount: mount, Account: e.Caller.Username, AccountType: e.Caller.AccountType, Roles: e.Caller.Roles,
		CreatedBy: e.CreatedBy, CreatedAt: timestamppb.New(e.CreatedAt), ExpiresAt: optTime(e.ExpiresAt),
		UsedAt: optTime(e.UsedAt), RevokedAt: optTime(e.RevokedAt), AcmeAccount: e.Account, Status: status,
	}
}

// CreateEAB implements ACMEService.CreateEAB.
func (h acmeGRPC) CreateEAB(ctx context.Context, req *mcv1.CreateEABRequest) (*mcv1.CreateEABResponse, error) {
	ttl, err := pki.ParseDuration("ttl", req.GetTtl())
	if err != nil {
		return nil, err
	}
	e, err := h.acme.CreateEAB(ctx, caller(ctx), req.GetMount(), acme.EABRequest{
		For: engine.Caller{Username: req.GetAccount(), AccountType: req.GetAccountType(), Roles: req.GetRoles()}, TTL: ttl,
	})
	if err != nil {
		return nil, err
	}
	key := base64.RawURLEncoding.EncodeToString(e.Key)
	clear(e.Key)
	return &mcv1.CreateEABResponse{Eab: eabPB(req.GetMount(), e, time.Now()), HmacKey: key}, nil
}

// ListEABs implements ACMEService.ListEABs.
func (h acmeGRPC) ListEABs(ctx context.Context, req *mcv1.ListEABsRequest) (*mcv1.ListEABsResponse, error) {
	list, err := h.acme.ListEABs(ctx, caller(ctx), req.GetMount(), req.GetAccount())
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListEABsResponse{Eabs: make([]*mcv1.EAB, len(list))}
	now := time.Now()
	for i, e := range list {
		out.Eabs[i] = eabPB(req.GetMount(), e, now)
	}
	return out, nil
}

// RevokeEAB implements ACMEService.RevokeEAB.
func (h acmeGRPC) RevokeEAB(ctx context.Context, req *mcv1.RevokeEABRequest) (*mcv1.RevokeEABResponse, error) {
	e, err := h.acme.RevokeEAB(ctx, caller(ctx), req.GetMount(), req.GetKid())
	if err != nil {
		return nil, err
	}
	return &mcv1.RevokeEABResponse{Eab: eabPB(req.GetMount(), e, time.Now())}, nil
}
