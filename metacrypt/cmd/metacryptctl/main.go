// Command metacryptctl manages Metacrypt over its gRPC API: the barrier
// (init, unseal, seal, status, password, rotate), mounts, the CA engine
// (root, issuers, issue, sign, renew, revoke, list, crl), the SSH CA
// (ssh), transit (transit) and user-to-user (u2u) engines, the policy,
// generic engine requests and the ACME server's EAB credentials. It logs
// in through MCIAS ("metacryptctl login") or uses a token given with
// --token or $METACRYPTCTL_TOKEN.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcdsl/terminal"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
	"git.metacircular.net/metacircular/metacrypt/client"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "metacryptctl: %v\n", err)
		os.Exit(1)
	}
}

// tool is metacryptctl's shared CLI state (flags, session, output).
var tool = &cli.Tool{Name: "metacryptctl", Service: "metacrypt", Login: mciasclient.CLILogin}

// newClient builds an API client; needToken is false for the calls that
// need none (status, unseal).
func newClient(needToken bool) (*client.Client, error) {
	s, addr, err := tool.Server(needToken)
	if err != nil {
		return nil, err
	}
	return client.New(addr, s.CACert, s.Token)
}

// withClient runs f with a client, closing it afterwards.
func withClient(needToken bool, f func(c *client.Client) error) error {
	c, err := newClient(needToken)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	return f(c)
}

func newRoot() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "metacryptctl",
		Short: "Manage Metacrypt: the seal, mounts, the CA, SSH CA, transit and u2u engines, and the policy",
		Long: `metacryptctl talks to Metacrypt's gRPC API. "metacryptctl login" logs in through
MCIAS and saves the Metacrypt address, the MCIAS address, the CA and the
token to a session file (mode 0600); later commands use it. --token or
$METACRYPTCTL_TOKEN use a token instead (a system account's, for scripts).
Addresses are gRPC host:port pairs, from flags or $METACIRCULAR_METACRYPT,
$METACIRCULAR_MCIAS and $METACIRCULAR_CA. Output is a table; --json prints
JSON for scripts.

Metacrypt starts sealed: "metacryptctl unseal" (no login needed) opens it
with the unseal password. CA commands work on the mount given by --mount
(default "pki"); "ssh", "transit" and "u2u" commands on the mount of that
name by default.`,
		Example: `  metacryptctl --server metacrypt.svc.mcp.metacircular.net:9443 --mcias mcias.svc.mcp.metacircular.net:9443 login -u admin
  metacryptctl unseal
  metacryptctl issue services --dns mcq.svc.mcp.metacircular.net --cert-file mcq.crt --key-file mcq.key`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	tool.Flags(cmd)
	cmd.AddCommand(tool.LoginCommand(), initCmd(), unsealCmd(), sealCmd(), statusCmd(), passwordCmd(), rotateCmd(), mountsCmd(),
		rootCmd(), issuersCmd(), issueCmd(), signCmd(), renewCmd(), revokeCmd(), listCmd(), showCmd(), crlCmd(),
		sshCmd(), transitCmd(), u2uCmd(), policyCmd(), requestCmd(), acmeCmd())
	return cmd
}

// stdinLines reads standard input line by line across calls (a command
// may read two passwords from it).
var stdinLines = sync.OnceValue(func() *bufio.Reader { return bufio.NewReader(os.Stdin) })

// readPassword reads a password: the next line of standard input with
// stdin, else from the terminal without echo (twice when confirm).
func readPassword(stdin bool, prompt string, confirm bool) (string, error) {
	if stdin {
		line, err := stdinLines().ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password on standard input")
		}
		return pw, nil
	}
	pw, err := terminal.ReadPassword(prompt)
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := terminal.ReadPassword("Repeat it: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords differ; nothing changed")
		}
	}
	return pw, nil
}

// mountFlag adds --mount to a CA command.
func mountFlag(cmd *cobra.Command, mount *string) {
	cmd.Flags().StringVar(mount, "mount", "pki", "CA mount")
}

func joinOr(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, ",")
}
