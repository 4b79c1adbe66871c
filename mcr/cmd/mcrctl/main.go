// Command mcrctl manages MCR over its gRPC API: repositories, tags and
// manifests, access rules, garbage collection and the audit log. It logs
// in through MCIAS ("mcrctl login") or uses a token given with --token or
// $MCRCTL_TOKEN. Pushing and pulling images is for registry clients
// (podman, docker, skopeo, crane).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/cli"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	"git.metacircular.net/metacircular/mcr/client"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcrctl: %v\n", err)
		os.Exit(1)
	}
}

// tool is mcrctl's shared CLI state: --server is MCR's gRPC address
// ($METACIRCULAR_MCR).
var tool = &cli.Tool{Name: "mcrctl", Service: "mcr", Login: mciasclient.CLILogin}

func newClient() (*client.Client, error) {
	s, addr, err := tool.Server(true)
	if err != nil {
		return nil, err
	}
	return client.New(addr, s.CACert, s.Token)
}

// withClient runs fn with a connected client.
func withClient(fn func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		return fn(cmd.Context(), c, cmd, args)
	}
}

func newRoot() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcrctl",
		Short: "Manage the MCR container registry",
		Long: `mcrctl talks to MCR's gRPC management API. "mcrctl login" logs in through
MCIAS and saves the MCR address, the MCIAS address, the CA and the token to a
session file (mode 0600); later commands use it. --token or $MCRCTL_TOKEN use
a token instead. Addresses are gRPC host:port pairs, from flags or
$METACIRCULAR_MCR, $METACIRCULAR_MCIAS and $METACIRCULAR_CA. Output is a
table; --json prints JSON for scripts.

Browsing shows the repositories you may pull; policies, gc and audit are for
admins. To push and pull images use a registry client:
  podman login mcr.svc.mcp.metacircular.net -u <mcias user>`,
		Example: `  mcrctl --server mcr.svc.mcp.metacircular.net:9443 --mcias mcias.svc.mcp.metacircular.net:9443 login -u admin
  mcrctl repos list
  mcrctl manifest inspect team/app v1.2.0
  mcrctl gc --dry-run`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	tool.Flags(cmd)
	cmd.AddCommand(tool.LoginCommand(), reposCmd(), tagsCmd(), manifestCmd(), policiesCmd(), gcCmd(), auditCmd())
	return cmd
}
