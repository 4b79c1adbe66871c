// Package routes registers a node's service routes with its local
// mc-proxy through mc-proxy's admin socket (mcproxy/client). Adding is an
// idempotent upsert that switches mc-proxy's data plane before returning,
// which is what makes a redeploy's switch atomic; removing a route that
// is not there is no error.
package routes

import (
	"context"
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcproxyclient "git.metacircular.net/metacircular/mcproxy/client"
)

// Route is one route as the agent registers it.
type Route struct {
	Listener        string
	Hostname        string
	Mode            string
	Backend         string
	TLSCert         string
	TLSKey          string
	BackendProtocol string
}

// Proxy is a node's mc-proxy.
type Proxy struct {
	Client *mcproxyclient.Client
}

// Upsert adds or replaces the route for the listener and host name.
func (p *Proxy) Upsert(ctx context.Context, r Route) error {
	_, _, err := p.Client.AddRoute(ctx, mcproxyclient.Route{
		Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
		TLSCert: r.TLSCert, TLSKey: r.TLSKey, BackendProtocol: r.BackendProtocol,
	})
	if err != nil {
		return fmt.Errorf("mc-proxy route %s on %s: %w", r.Hostname, r.Listener, err)
	}
	return nil
}

// Remove removes the route; a missing one is no error.
func (p *Proxy) Remove(ctx context.Context, listener, hostname string) error {
	err := p.Client.RemoveRoute(ctx, listener, hostname)
	if err != nil && apierr.KindOf(err) != apierr.NotFound {
		return fmt.Errorf("remove mc-proxy route %s on %s: %w", hostname, listener, err)
	}
	return nil
}

// List lists every route mc-proxy serves.
func (p *Proxy) List(ctx context.Context) ([]Route, error) {
	rs, err := p.Client.ListRoutes(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list mc-proxy routes: %w", err)
	}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		out = append(out, Route{Listener: r.Listener, Hostname: r.Hostname, Mode: r.Mode, Backend: r.Backend,
			TLSCert: r.TLSCert, TLSKey: r.TLSKey, BackendProtocol: r.BackendProtocol})
	}
	return out, nil
}
