// Command mcp is the operator's CLI of the Metacircular control plane. It
// talks to the nodes' agents directly (--direct, the only mode until the
// master lands): deploy, undeploy, stop, start, restart, ps, status,
// logs, sync, build, validate, edit, node list, agent status and
// recover, and moving a service's data in and out. Configuration:
// ~/.config/mcp/mcp.toml.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcp/client"
	"git.metacircular.net/metacircular/mcp/internal/cliconfig"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

var version = "dev"

// exitError carries an exit code other than 1 (sync --dry-run's 2).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, ee.msg)
		}
		os.Exit(ee.code)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mcp: %v\n", err)
		os.Exit(1)
	}
}

// app is the CLI's shared state.
type app struct {
	configPath string
	token      string
	node       string
	asJSON     bool
	timeout    time.Duration
	cfg        *cliconfig.Config
}

func (a *app) config() (*cliconfig.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	c, err := cliconfig.Load(a.configPath)
	if err != nil {
		return nil, err
	}
	a.cfg = c
	return c, nil
}

func (a *app) tokenValue() (string, error) {
	if a.token != "" {
		return a.token, nil
	}
	cfg, err := a.config()
	if err != nil {
		return "", err
	}
	return cfg.Token()
}

// dial connects to a node's agent (its addresses in order).
func (a *app) dial(ctx context.Context, n cliconfig.Node) (*client.Client, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	tok, err := a.tokenValue()
	if err != nil {
		return nil, err
	}
	c, err := client.DialFirst(ctx, n.All(), cfg.MCIAS.CACert, tok, 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return c, nil
}

// definition loads a service's definition from the services directory.
func (a *app) definition(name string) (*spec.Service, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	path := cfg.Services.Dir + "/" + name + ".toml"
	return spec.ParseFile(path)
}

// nodeOf is the node of a service: --node, its definition's, or the only
// node.
func (a *app) nodeOf(service string) (cliconfig.Node, error) {
	cfg, err := a.config()
	if err != nil {
		return cliconfig.Node{}, err
	}
	if a.node != "" {
		return cfg.Node(a.node)
	}
	if sp, err := a.definition(service); err == nil {
		return cfg.NodeFor(sp)
	}
	if len(cfg.Nodes) == 1 {
		return cfg.Nodes[0], nil
	}
	return cliconfig.Node{}, fmt.Errorf("which node runs %s? pass --node (no definition %s/%s.toml names one)", service, cfg.Services.Dir, service)
}

// nodes are the nodes a command looks at: --node's, or all.
func (a *app) nodes() ([]cliconfig.Node, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if a.node != "" {
		n, err := cfg.Node(a.node)
		return []cliconfig.Node{n}, err
	}
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("no [[nodes]] in %s", cfg.Path)
	}
	return cfg.Nodes, nil
}

func (a *app) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, a.timeout)
}

func newRoot() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:   "mcp",
		Short: "Deploy and run Metacircular services on your nodes",
		Long: `mcp deploys services described by TOML definitions (one file per service in
the services directory) to the nodes' MCP agents, and shows and changes
what runs. It talks to the agents directly (the master comes later).

Configuration: ~/.config/mcp/mcp.toml ($MCP_CONFIG, --config): [[nodes]]
with the agents' addresses, [mcias] for "mcp login", [auth] token_path,
[services] dir, [build] workspace. Log in once with "mcp login"; --token
or $MCP_TOKEN use a token instead (a system account's, for scripts).
Tables by default, --json for scripts. Exit status: 0 success, 1 failure
(one line on stderr); "mcp sync --dry-run" exits 2 when it would change
something.`,
		Example: `  mcp login -u alice
  mcp validate
  mcp build hello && mcp deploy hello
  mcp ps
  mcp status hello
  mcp logs hello --follow
  mcp sync --dry-run`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := root.PersistentFlags()
	f.StringVar(&a.configPath, "config", cliconfig.DefaultPath(), "configuration file ($MCP_CONFIG)")
	f.StringVar(&a.token, "token", os.Getenv("MCP_TOKEN"), "MCIAS token to use instead of the saved one ($MCP_TOKEN)")
	f.StringVar(&a.node, "node", "", "node to act on (default: the service definition's node, or every node)")
	f.BoolVar(&a.asJSON, "json", false, "print JSON instead of tables")
	f.BoolVar(new(bool), "direct", true, "talk to the agents directly (the only mode until the master lands)")
	f.DurationVar(&a.timeout, "timeout", 30*time.Minute, "give up on a command after this long")
	root.AddCommand(
		a.loginCmd(),
		a.validateCmd(), a.buildCmd(), a.editCmd(),
		a.deployCmd(), a.opCmd("undeploy"), a.opCmd("stop"), a.opCmd("start"), a.opCmd("restart"),
		a.syncCmd(),
		a.psCmd(), a.statusCmd(), a.logsCmd(),
		a.nodeCmd(), a.agentCmd(),
		a.pushCmd(), a.pullCmd(), a.exportCmd(), a.importCmd(),
	)
	return root
}
