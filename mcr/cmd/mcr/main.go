// Command mcr is the Metacircular container registry: server (the OCI
// distribution API, the token endpoint, the management API and the web
// UI), init, status, snapshot and gc.
package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/service"
	"git.metacircular.net/metacircular/mcr/internal/server"
)

var version = "dev"

func main() { service.Main(def()) }

func def() service.Def[*server.Config] {
	return service.Def[*server.Config]{
		Name:    server.ServiceName,
		Short:   "Metacircular container registry (OCI distribution, MCIAS token auth)",
		Version: version,
		Load:    server.LoadConfig,
		Logging: func(c *server.Config) logging.Config { return c.Log },
		ServerLong: `server serves the OCI distribution API and the Docker token endpoint
(/v2/, /v2/token), the management REST API (/v1/) and, with [web] enabled,
the web UI on server.listen_addr, and the management gRPC API on
server.grpc_addr. Callers authenticate against MCIAS. The garbage collector
runs online every gc.interval unless gc.disabled.`,
		Build:    server.Build,
		Database: func(c *server.Config) string { return c.Database.Path },
		OpenDB:   server.OpenDB,
		Init:     initCmd,
		Status:   server.Status,
		Commands: []func(load func() (*server.Config, error)) *cobra.Command{gcCmd},
	}
}

func initCmd(load func() (*server.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the database, the blob store and the token signing key",
		Long: `init creates the database (applying its migrations), the blob store's
directories (registry.storage) and the Ed25519 key registry tokens are
signed with (registry.token_key). Running it again changes nothing.`,
		Example: "  mcr init --config /srv/mcr/mcr.toml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return server.Init(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
}

func gcCmd(load func() (*server.Config, error)) *cobra.Command {
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete unreferenced blobs and abandoned uploads (safe while the server runs)",
		Long: `gc collects garbage once, from this process, against the same database and
blob store the server uses; it is safe while the server runs. A blob is
deleted only when no manifest in any repository references it and nothing
used it within gc.grace; upload sessions idle longer than gc.upload_ttl,
files the database does not know and empty repositories go too.
--dry-run lists what would be deleted and deletes nothing.`,
		Example: `  mcr gc --config /srv/mcr/mcr.toml --dry-run
  mcr gc --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			rep, err := server.RunGC(cmd.Context(), cfg, dryRun, func(stage string, done, total int) {
				if total > 0 {
					fmt.Fprintf(stderr, "\r%-8s %d/%d", stage, done, total)
					if done == total {
						fmt.Fprintln(stderr)
					}
				}
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			for _, b := range rep.Blobs {
				fmt.Fprintf(out, "%s %s (%s)\n", verb, b.Digest, server.HumanBytes(b.Size))
			}
			fmt.Fprintf(out, "%s %d blobs (%s), %d uploads, %d orphan files, %d empty repositories; %d blobs kept\n",
				verb, len(rep.Blobs), server.HumanBytes(rep.BytesFreed), len(rep.Uploads), len(rep.OrphanFiles), len(rep.Repositories), rep.BlobsKept)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
