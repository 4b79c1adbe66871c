// Command mc-proxy is the platform's TLS ingress: server (the data plane,
// the admin API on its Unix socket and metrics), init, status and
// snapshot, on mcdsl/service.
package main

import (
	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcproxy/internal/server"
)

var version = "dev"

func main() { service.Main(def()) }

func def() service.Def[*server.Config] {
	return service.Def[*server.Config]{
		Name:    server.ServiceName,
		Short:   "Metacircular TLS ingress: SNI routing to L4 relays and L7 reverse proxies",
		Version: version,
		Load:    server.LoadConfig,
		Logging: func(c *server.Config) logging.Config { return c.Log },
		ServerLong: `server opens the database (seeding it from [[routes]] and [firewall] only if it
has never held state), logs one warning listing every difference between
mc-proxy.toml and the database, and serves the database's routes on the
[[listeners]], the admin API on server.admin_socket and, with
server.metrics_addr, Prometheus metrics. Routes and firewall rules change at
run time through the admin socket (mcproxyctl), never by editing the TOML.
On SIGTERM it stops accepting and drains open connections for up to
server.shutdown_timeout.`,
		Build:    server.Build,
		Database: func(c *server.Config) string { return c.Database.Path },
		OpenDB:   server.OpenDB,
		Init:     initCmd,
		Status:   server.Status,
	}
}

func initCmd(load func() (*server.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the database and seed it from mc-proxy.toml if it has never held state",
		Long: `init creates the database, applies its migrations and, if the database has
never held state, stores the [[routes]] and [firewall] blocked_* lists of
mc-proxy.toml in it — what server does at every start, so init is optional.
Once seeded, the database is the source of truth: running init again
changes nothing and lists any difference between the TOML and the database.`,
		Example: `  mc-proxy init --config /srv/mc-proxy/mc-proxy.toml
  mc-proxy init    # the default configuration, /srv/mc-proxy/mc-proxy.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return server.Init(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
}
