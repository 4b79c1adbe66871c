// Command mcns is the Metacircular DNS service: server (DNS, REST and
// gRPC), init, status and snapshot.
package main

import (
	"errors"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcns/internal/server"
)

var version = "dev"

func main() { service.Main(def()) }

func def() service.Def[*server.Config] {
	return service.Def[*server.Config]{
		Name:    server.ServiceName,
		Short:   "Metacircular DNS: authoritative for the platform zones, forwarding the rest",
		Version: version,
		Load:    server.LoadConfig,
		Logging: func(c *server.Config) logging.Config { return c.Log },
		ServerLong: `server creates the [[zones]] of the configuration that do not exist yet, then
serves DNS on dns.listen_addr (UDP and TCP) and the record API on
server.listen_addr (REST) and server.grpc_addr (gRPC), authenticating API
callers against MCIAS.`,
		Build:    server.Build,
		Database: func(c *server.Config) string { return c.Database.Path },
		OpenDB:   server.OpenDB,
		Init:     initCmd,
		Status:   server.Status,
	}
}

func initCmd(load func() (*server.Config, error)) *cobra.Command {
	var zoneFile, origin string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the database and the configured zones; optionally import a zone file",
		Long: `init creates the database and every [[zones]] entry of the configuration that
does not exist yet; existing zones are left alone, so running it again is
safe. With --zone-file FILE --origin ZONE it first imports an RFC 1035 zone
file (for moving from another DNS server): the zone is created from the
file's SOA with all its records, all or nothing, and the import fails if
ZONE already exists. Then the configured zones are created as usual.`,
		Example: `  mcns init --config /srv/mcns/mcns.toml
  mcns init --zone-file old/example.net.zone --origin example.net`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if origin != "" && zoneFile == "" {
				return errors.New("--origin needs --zone-file")
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			return server.Init(cmd.Context(), cfg, zoneFile, origin, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&zoneFile, "zone-file", "", "RFC 1035 zone file to import")
	cmd.Flags().StringVar(&origin, "origin", "", "zone the file describes, e.g. svc.mcp.metacircular.net (default: the file's SOA owner)")
	return cmd
}
