// Command mc-proxy is the platform's TLS ingress: server (the data plane,
// the admin API on its Unix socket and metrics), status and snapshot.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
	"git.metacircular.net/metacircular/mcproxy/internal/admin"
	"git.metacircular.net/metacircular/mcproxy/internal/server"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mc-proxy: %v\n", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var cfgPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:           "mc-proxy",
		Short:         "Metacircular TLS ingress: SNI routing to L4 relays and L7 reverse proxies",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/srv/mc-proxy/mc-proxy.toml", "configuration file")
	load := func() (*server.Config, error) { return server.LoadConfig(cfgPath) }
	status := admin.CLI{
		Socket: func() (string, error) {
			cfg, err := load()
			if err != nil {
				return "", err
			}
			return cfg.Server.AdminSocket, nil
		},
		JSON: &asJSON,
	}.StatusCommand()
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(serverCmd(load), status, snapshotCmd(load))
	return cmd
}

func serverCmd(load func() (*server.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Serve the listeners, the admin socket and metrics until SIGINT/SIGTERM",
		Long: `server opens the database (seeding it from [[routes]] and [firewall] only if it
has never held state), logs one warning listing every difference between
mc-proxy.toml and the database, and serves the database's routes on the
[[listeners]]. Routes and firewall rules change at run time through the
admin socket (mcproxyctl), never by editing the TOML. On SIGTERM it stops
accepting and drains open connections for up to server.shutdown_timeout.`,
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
			logger.Info("mc-proxy starting", "version", version, "listeners", len(cfg.Listeners),
				"admin_socket", cfg.Server.AdminSocket, "metrics", cfg.Server.MetricsAddr)
			return server.Run(cmd.Context(), cfg, logger, server.Listeners{})
		},
	}
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
