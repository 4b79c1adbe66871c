// Command mcproxyctl manages a running mc-proxy over its admin Unix socket:
// routes, firewall rules and status. Who may use it is decided by the
// socket's file permissions (owner and group, mode 0660).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcproxy/internal/admin"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcproxyctl: %v\n", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var socket string
	var asJSON bool
	cmd := &cobra.Command{
		Use:           "mcproxyctl",
		Short:         "Manage a running mc-proxy's routes and firewall rules over its admin socket",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&socket, "socket", "/srv/mc-proxy/mc-proxy.sock", "mc-proxy admin socket (server.admin_socket)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	cli := admin.CLI{Socket: func() (string, error) { return socket, nil }, JSON: &asJSON}
	cmd.AddCommand(cli.RoutesCommand(), cli.FirewallCommand(), cli.StatusCommand())
	return cmd
}
