package server

import (
	"context"
	"fmt"
	"net"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/dnsserver"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// SeedZones creates the configured [[zones]] that do not exist yet and
// reports each one it created.
func SeedZones(ctx context.Context, cfg *Config, svc *records.Service) ([]dnsdata.Zone, error) {
	var created []dnsdata.Zone
	for _, seed := range cfg.Zones {
		z, ok, err := svc.EnsureZone(ctx, seed.Spec())
		if err != nil {
			return created, fmt.Errorf("seed zone %s: %w", seed.Name, err)
		}
		if ok {
			created = append(created, z)
		}
	}
	return created, nil
}

// Build constructs MCNS on rt: the store (seeding the configured zones),
// the DNS server on dns.listen_addr (UDP and TCP, component "dns"), the
// gRPC record API on server.grpc_addr and its REST face on
// server.listen_addr, callers authenticated against MCIAS. Tests hand in
// pre-bound sockets: listeners "http" and "grpc", and for DNS the packet
// conn and listener "dns".
func Build(ctx context.Context, cfg *Config, rt *service.Runtime) error {
	st, err := store.Open(ctx, cfg.Database.Path, rt.Logger)
	if err != nil {
		return err
	}
	rt.OnClose(st.Close)
	svc := records.New(st, cfg.MCNS.AgentAccounts, rt.Logger)
	if _, err := SeedZones(ctx, cfg, svc); err != nil {
		return err
	}
	validator, err := auth.New(cfg.MCIAS, auth.Options{})
	if err != nil {
		return err
	}
	dns, err := dnsserver.New(st, cfg.DNS, rt.Logger)
	if err != nil {
		return err
	}
	check := func(ctx context.Context) error { return st.DB().PingContext(ctx) }
	rt.SetHealth(check)
	gs, err := grpcserver.New(rt.GRPCOptions(cfg.Server, grpcserver.Options{
		Service: ServiceName, Validator: validator, Health: check, Maps: methodMaps(),
	}))
	if err != nil {
		return err
	}
	register(gs, svc, st)
	rest, err := restAPI(gs, rt.Logger)
	if err != nil {
		return err
	}
	if err := rt.HTTP(cfg.Server, rest); err != nil {
		return err
	}
	rt.GRPC(gs)

	var udp net.PacketConn
	var tcp net.Listener
	rt.Add("dns", func(ctx context.Context) (string, error) {
		pc, pok := rt.PacketConn("dns")
		ln, lok := rt.Listener("dns")
		if pok && lok {
			udp, tcp = pc, ln
			return udp.LocalAddr().String(), nil
		}
		var lerr error
		if udp, tcp, lerr = dns.Listen(ctx); lerr != nil {
			return "", lerr
		}
		return udp.LocalAddr().String(), nil
	}, func(ctx context.Context) error {
		return dns.Serve(ctx, udp, tcp)
	}, func() {
		if udp != nil {
			_ = udp.Close()
			_ = tcp.Close()
		}
	})
	return nil
}
