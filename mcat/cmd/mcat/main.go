// Command mcat is MCAT, the login-policy tester: a small web app that
// submits a login to MCIAS with a chosen service_name and tags and shows
// what MCIAS decided.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcat/internal/tester"
	"git.metacircular.net/metacircular/mcdsl/logging"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcat: %v\n", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:           "mcat",
		Short:         "MCAT, the MCIAS login-policy tester",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/srv/mcat/mcat.toml", "configuration file")
	cmd.AddCommand(&cobra.Command{
		Use:   "server",
		Short: "Serve the tester's web page until SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := tester.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			logger, err := logging.New(cfg.Log, os.Stderr)
			if err != nil {
				return err
			}
			logger.Info("mcat starting", "version", version, "mcias", cfg.MCIAS.ServerURL)
			return tester.Run(cmd.Context(), cfg, logger)
		},
	})
	return cmd
}
