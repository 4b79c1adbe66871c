// Package specpb converts service definitions between their Go form
// (internal/spec) and the agent API's messages (mcp.v1.ServiceSpec): the
// CLI sends what it parsed, the agent turns it back and validates it with
// the same rules as a file.
package specpb

import (
	"time"

	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// ToPB converts a definition to its message.
func ToPB(s *spec.Service) *mcpv1.ServiceSpec {
	out := &mcpv1.ServiceSpec{
		Name: s.Name, Node: s.Node, Tier: s.Tier, Active: s.Active, Path: s.Path, BuildImages: s.BuildImages,
		Snapshot: &mcpv1.Snapshot{Method: s.Snapshot.Method, Exec: s.Snapshot.Exec, Exclude: s.Snapshot.Exclude},
	}
	for _, c := range s.Components {
		pc := &mcpv1.Component{
			Name: c.Name, Image: c.Image, Volumes: c.Volumes, Cmd: c.Cmd, Env: c.Env, Network: c.Network, User: c.User,
			Restart: c.Restart, Health: &mcpv1.HealthCheck{Type: c.Health.Type, Path: c.Health.Path, Route: c.Health.Route},
		}
		if c.Health.Timeout > 0 {
			pc.Health.Timeout = c.Health.Timeout.String()
		}
		for _, r := range c.Routes {
			pc.Routes = append(pc.Routes, &mcpv1.Route{Name: r.Name, Port: int32(r.Port), Mode: r.Mode, Hostname: r.Hostname, //nolint:gosec // ports are validated ≤ 65535
				Public: r.Public, BackendProtocol: r.BackendProtocol})
		}
		out.Components = append(out.Components, pc)
	}
	return out
}

// FromPB converts a message to a definition and validates it as the
// parser validates a file ("request" names it in errors).
func FromPB(p *mcpv1.ServiceSpec) (*spec.Service, error) {
	s := &spec.Service{
		Name: p.GetName(), Node: p.GetNode(), Tier: p.GetTier(), Active: p.GetActive(), Path: p.GetPath(),
		BuildImages: p.GetBuildImages(),
		Snapshot:    spec.Snapshot{Method: p.GetSnapshot().GetMethod(), Exec: p.GetSnapshot().GetExec(), Exclude: p.GetSnapshot().GetExclude()},
	}
	for _, c := range p.GetComponents() {
		sc := spec.Component{
			Name: c.GetName(), Image: c.GetImage(), Volumes: c.GetVolumes(), Cmd: c.GetCmd(), Env: c.GetEnv(),
			Network: c.GetNetwork(), User: c.GetUser(), Restart: c.GetRestart(),
			Health: spec.Health{Type: c.GetHealth().GetType(), Path: c.GetHealth().GetPath(), Route: c.GetHealth().GetRoute()},
		}
		if t := c.GetHealth().GetTimeout(); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil {
				return nil, spec.Errors{{File: "request", Key: "components." + c.GetName() + ".health.timeout", Msg: err.Error()}}
			}
			sc.Health.Timeout = d
		}
		for _, r := range c.GetRoutes() {
			sc.Routes = append(sc.Routes, spec.Route{Name: r.GetName(), Port: int(r.GetPort()), Mode: r.GetMode(), Hostname: r.GetHostname(),
				Public: r.GetPublic(), BackendProtocol: r.GetBackendProtocol()})
		}
		s.Components = append(s.Components, sc)
	}
	return spec.Check(s)
}
