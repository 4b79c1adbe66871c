// Command mcns is the Metacircular DNS service: server (DNS, REST and
// gRPC), init, status and snapshot.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/server"
	"git.metacircular.net/metacircular/mcns/internal/store"
	"git.metacircular.net/metacircular/mcns/internal/zonefile"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcns: %v\n", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:           "mcns",
		Short:         "Metacircular DNS: authoritative for the platform zones, forwarding the rest",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/srv/mcns/mcns.toml", "configuration file")
	load := func() (*server.Config, error) { return server.LoadConfig(cfgPath) }
	cmd.AddCommand(serverCmd(load), initCmd(load), statusCmd(load), snapshotCmd(load))
	return cmd
}

func serverCmd(load func() (*server.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Serve DNS and the REST and gRPC record APIs until SIGINT/SIGTERM",
		Long: `server creates the [[zones]] of the configuration that do not exist yet, then
serves DNS on dns.listen_addr (UDP and TCP) and the record API on
server.listen_addr (REST) and server.grpc_addr (gRPC), authenticating API
callers against MCIAS.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			logger, err := logging.New(cfg.Log, os.Stderr)
			if err != nil {
				return err
			}
			logger.Info("mcns starting", "version", version, "dns", cfg.DNS.ListenAddr,
				"https", cfg.Server.ListenAddr, "grpc", cfg.Server.GRPCAddr)
			return server.Run(cmd.Context(), cfg, logger, server.Listeners{})
		},
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
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if origin != "" && zoneFile == "" {
				return errors.New("--origin needs --zone-file")
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			out := cmd.OutOrStdout()
			// The import comes first: it creates its zone from the file's
			// SOA and refuses a zone that exists, so a seeded zone can be
			// imported on a fresh database.
			if zoneFile != "" {
				f, err := os.Open(zoneFile) //nolint:gosec // operator-named file
				if err != nil {
					return err
				}
				z, n, err := zonefile.Import(ctx, st, f, origin)
				_ = f.Close()
				if err != nil {
					return fmt.Errorf("import %s: %w", zoneFile, err)
				}
				fmt.Fprintf(out, "imported zone %s from %s: %d records (serial %d)\n", z.Name, zoneFile, n, z.Serial)
			}
			created, err := server.SeedZones(ctx, cfg, records.New(st, cfg.MCNS.AgentAccounts, logging.Discard()))
			for _, z := range created {
				fmt.Fprintf(out, "created zone %s (serial %d)\n", z.Name, z.Serial)
			}
			if err != nil {
				return err
			}
			if len(created) == 0 && zoneFile == "" {
				fmt.Fprintf(out, "mcns: %s has every configured zone; nothing changed\n", cfg.Database.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&zoneFile, "zone-file", "", "RFC 1035 zone file to import")
	cmd.Flags().StringVar(&origin, "origin", "", "zone the file describes, e.g. svc.mcp.metacircular.net (default: the file's SOA owner)")
	return cmd
}

// zoneSummary is one zone in status output.
type zoneSummary struct {
	Name    string `json:"name"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
}

type summary struct {
	Database string        `json:"database"`
	DNS      string        `json:"dns"`
	Zones    []zoneSummary `json:"zones"`
}

func statusCmd(load func() (*server.Config, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Summarize the database: zones, serials, record counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.Database.Path); err != nil {
				return fmt.Errorf("database %s: %w (run mcns init)", cfg.Database.Path, err)
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			sum := summary{Database: cfg.Database.Path, DNS: cfg.DNS.ListenAddr, Zones: []zoneSummary{}}
			zones, err := st.ListZones(ctx)
			if err != nil {
				return err
			}
			for _, z := range zones {
				recs, err := st.Records(ctx, z.Name, "", "")
				if err != nil {
					return err
				}
				sum.Zones = append(sum.Zones, zoneSummary{Name: z.Name, Serial: z.Serial, Records: len(recs)})
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			fmt.Fprintf(out, "database:   %s\ndns:        %s\nzones:      %d\n", sum.Database, sum.DNS, len(sum.Zones))
			for _, z := range sum.Zones {
				fmt.Fprintf(out, "  %s  serial %d, %d records\n", z.Name, z.Serial, z.Records)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func snapshotCmd(load func() (*server.Config, error)) *cobra.Command {
	return snapshot.Command(func(ctx context.Context) (*db.DB, string, string, error) {
		cfg, err := load()
		if err != nil {
			return nil, "", "", err
		}
		if _, err := os.Stat(cfg.Database.Path); errors.Is(err, os.ErrNotExist) {
			return nil, "", "", fmt.Errorf("database %s does not exist", cfg.Database.Path)
		}
		st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
		if err != nil {
			return nil, "", "", err
		}
		return st.DB(), "", server.ServiceName, nil
	})
}
