// Command mcp-agent is the MCP agent, one per node: it deploys and runs
// the node's services as containers (with their certificates, mc-proxy
// routes and MCNS names), watches them, and serves the agent API the mcp
// CLI (and later the master) calls.
package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcp/client"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
	"git.metacircular.net/metacircular/mcp/internal/registry"
	"git.metacircular.net/metacircular/mcp/internal/server"
)

var version = "dev"

func main() {
	server.Version = version
	service.Main(def())
}

func def() service.Def[*server.Config] {
	return service.Def[*server.Config]{
		Name:    server.ServiceName,
		Short:   "MCP agent: deploys, runs and watches a node's services",
		Version: version,
		Load:    server.LoadConfig,
		Logging: func(c *server.Config) logging.Config { return c.Log },
		ServerLong: `server resumes the operations an earlier run left unfinished, brings the
node's services up in the configured boot sequence, then serves the agent
API (gRPC, server.grpc_addr, MCIAS tokens) and watches the services every
monitor.interval (drift, restarts, flapping, orphans). Run it as a systemd
unit (deploy/systemd/mcp-agent.service) with its binary at
/srv/mcp/mcp-agent.`,
		Build:    server.Build,
		Database: func(c *server.Config) string { return c.Database.Path },
		OpenDB: func(ctx context.Context, c *server.Config) (*db.DB, error) {
			return registry.OpenDB(ctx, c.Database.Path, nil)
		},
		Status:   server.Status,
		Commands: []func(load func() (*server.Config, error)) *cobra.Command{recoverCmd},
	}
}

// localAddr is where the agent's own gRPC listener answers on this node.
func localAddr(cfg *server.Config) string {
	host, port, err := net.SplitHostPort(cfg.Server.GRPCAddr)
	if err != nil {
		return cfg.Server.GRPCAddr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = cfg.Agent.Address
	}
	return net.JoinHostPort(host, port)
}

func recoverCmd(load func() (*server.Config, error)) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "recover [SERVICE...]",
		Short: "Recreate every container from the registry after the runtime lost its state",
		Long: `recover asks the running agent (as the agent's own system account, with its
token file) to bring back every service whose desired state is running, or
the named ones: containers missing from the runtime are created again from
the registry with their ports, volumes, environment and command — images
pulled again if they are gone — then health-checked, and their mc-proxy
routes and MCNS names registered again. Containers that still run are
kept. This is the one command after a podman database reset (the seed's
UID-change incident). The agent itself also does this at start (boot
sequence), so if it is not running, starting it recovers.`,
		Example: `  mcp-agent recover --config /srv/mcp/mcp-agent.toml
  mcp-agent recover mcns mcq`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			tok, err := cfg.Token()
			if err != nil {
				return err
			}
			addr := localAddr(cfg)
			c, err := client.New(addr, cfg.Agent.CACert, tok)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			_, err = c.Recover(ctx, args, func(ev *mcpv1.OperationEvent) {
				if ev.GetFinal() {
					return
				}
				line := fmt.Sprintf("%-12s %-10s %-8s %s", ev.GetService(), ev.GetStep(), ev.GetState(), ev.GetMessage())
				fmt.Fprintln(out, strings.TrimRight(line, " "))
			})
			if err != nil {
				if client.KindOf(err) == apierr.Unavailable {
					return fmt.Errorf("the agent at %s does not answer (%w): start it — it recovers its services at start", addr, err)
				}
				return err
			}
			fmt.Fprintln(out, "recovered")
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up after this long")
	return cmd
}
