// Command metacircular runs the Metacircular platform on one machine
// (up, down, status) and manages its seed CA (ca init, ca issue).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/internal/launcher"
	"git.metacircular.net/metacircular/internal/seedpki"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts a clean stop, a second one takes the
	// default action; the children then die with the launcher (Pdeathsig).
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "metacircular: %v\n", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "metacircular",
		Short: "Run the Metacircular platform on this machine",
		Long: `metacircular runs the Metacircular platform on one machine as child
processes, in bootstrap order: the seed PKI, then ` + strings.Join(serviceNames(), ", ") + `
(the services implemented so far; the MCP master joins as it lands).
All state (seed CA, configs, databases, logs) lives under one root
directory, so running "up" again reuses it.`,
		Example: `  metacircular up                 # state under ./srv; Ctrl-C stops it
  metacircular status             # from another shell
  eval "$(metacircular env)"      # point the CLIs (mciasctl, mcrctl, ...) at it
  metacircular down`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defaultRoot := os.Getenv("METACIRCULAR_ROOT")
	if defaultRoot == "" {
		defaultRoot = "./srv"
	}
	var root string
	cmd.PersistentFlags().StringVar(&root, "root", defaultRoot, "state root directory; $METACIRCULAR_ROOT sets the default")
	cmd.AddCommand(
		newUpCommand(&root),
		newDownCommand(&root),
		newStatusCommand(&root),
		newEnvCommand(&root),
		newCACommand(&root),
		newVersionCommand(),
	)
	return cmd
}

func newUpCommand(root *string) *cobra.Command {
	opts := launcher.Options{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the platform and keep it running until Ctrl-C or \"down\"",
		Long: `up creates the seed CA under <root>/ca, then prepares, starts and
health-checks each platform service in bootstrap order, printing endpoints and
one-time credentials. It runs in the foreground; Ctrl-C (or "metacircular down"
from another shell) stops the services in reverse order. Re-running up on the
same root reuses the CA, ports and configs. Only one up may run per root.`,
		Example: `  metacircular up
  metacircular up --root /var/lib/metacircular --domain lab.example.net
  make up    # installs what is missing, builds, then runs this`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Root = *root
			opts.Services = launcher.Platform()
			opts.Stdout = cmd.OutOrStdout()
			return launcher.Up(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Domain, "domain", launcher.DefaultDomain, "platform domain; services are <service>.svc.<domain>")
	cmd.Flags().StringVar(&opts.BinDir, "bin-dir", "", "directory holding the service binaries (default: the directory of this binary)")
	cmd.Flags().DurationVar(&opts.StopTimeout, "stop-timeout", launcher.DefaultStopTimeout, "time each service gets to exit after SIGTERM before SIGKILL")
	return cmd
}

// serviceNames are the services "up" starts, in order.
func serviceNames() []string {
	var names []string
	for _, s := range launcher.Platform() {
		names = append(names, s.Name)
	}
	return names
}

func newEnvCommand(root *string) *cobra.Command {
	return &cobra.Command{
		Use:   "env",
		Short: "Print shell exports that point the platform's CLIs at this platform",
		Long: `env prints the exports "up" wrote to <root>/env once every service was up:
METACIRCULAR_MCIAS and METACIRCULAR_MCNS (gRPC addresses), METACIRCULAR_CA,
METACIRCULAR_MCPROXY_SOCKET and METACIRCULAR_ROOT. With them mciasctl,
mcnsctl and mcproxyctl need no address flags.`,
		Example: `  eval "$(metacircular env)"
  eval "$(metacircular env --root /var/lib/metacircular)"
  mciasctl login -u admin && mcnsctl records list svc.mcp.metacircular.net`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := launcher.ReadEnv(*root)
			if err != nil {
				return err
			}
			_, err = io.WriteString(cmd.OutOrStdout(), env)
			return err
		},
	}
}

func newDownCommand(root *string) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the platform started by \"up\" on this root",
		Long: `down signals the running "up" for this root and waits until it has stopped
every service and exited. With nothing running it says so and succeeds.`,
		Example: `  metacircular down
  metacircular down --root /var/lib/metacircular --timeout 1m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := launcher.Down(cmd.Context(), *root, timeout)
			if errors.Is(err, launcher.ErrNotRunning) {
				fmt.Fprintf(cmd.OutOrStdout(), "nothing running on %s\n", *root)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "platform on %s stopped\n", *root)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", launcher.DefaultDownTimeout, "how long to wait for the platform to stop")
	return cmd
}

func newStatusCommand(root *string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the platform runs and whether it is healthy",
		Long: `status shows the running launcher and, for each service, its pid, whether it
still runs, whether its health check passes now, its endpoints and its log.
It exits 1 if no launcher runs on the root or if any service is unhealthy.`,
		Example: `  metacircular status
  metacircular status --json | jq '.services[].endpoints'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := launcher.Status(cmd.Context(), *root)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return fmt.Errorf("encode status: %w", err)
				}
			} else {
				printStatus(out, st)
			}
			unhealthy := 0
			for _, s := range st.Services {
				if !s.Healthy {
					unhealthy++
				}
			}
			if unhealthy > 0 {
				return fmt.Errorf("%d of %d services unhealthy", unhealthy, len(st.Services))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(out io.Writer, st *launcher.PlatformStatus) {
	fmt.Fprintf(out, "launcher pid %d on %s: %s since %s\n", st.PID, st.Root, st.Phase, st.StartedAt.Local().Format(time.DateTime))
	if st.CACert != "" {
		fmt.Fprintf(out, "seed CA: %s\n", st.CACert)
	}
	if len(st.Services) == 0 {
		fmt.Fprintln(out, "no services running")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tRUNNING\tHEALTHY\tENDPOINTS\tLOG")
	for _, s := range st.Services {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.PID, yesNo(s.Running), yesNo(s.Healthy),
			launcher.FormatEndpoints(s.Endpoints), s.Log)
	}
	tw.Flush()
	for _, s := range st.Services {
		if s.HealthError != "" {
			fmt.Fprintf(out, "%s: %s\n", s.Name, s.HealthError)
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newCACommand(root *string) *cobra.Command {
	var dir string
	caDir := func() string {
		if dir != "" {
			return dir
		}
		return filepath.Join(*root, "ca")
	}
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the seed CA",
		Long:  "ca creates the platform's seed root CA and issues certificates from it.",
		Example: `  metacircular ca init
  metacircular ca issue mcias --dns mcias.svc.mcp.metacircular.net --ip 127.0.0.1`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "CA directory (default <root>/ca)")

	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create the seed root CA, or show the existing one",
		Example: `  metacircular ca init
  metacircular ca init --dir /etc/metacircular/ca`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := seedpki.Init(caDir())
			if err != nil {
				return err
			}
			sum := sha256.Sum256(ca.Certificate().Raw)
			fmt.Fprintf(cmd.OutOrStdout(), "seed CA: %s\nSHA-256 fingerprint: %s\nexpires: %s\n",
				ca.CertPath(), fingerprint(sum[:]), ca.Certificate().NotAfter.Format(time.RFC3339))
			return nil
		},
	}

	var (
		dnsNames []string
		ips      []net.IP
		validity string
	)
	issueCmd := &cobra.Command{
		Use:   "issue <name>",
		Short: "Issue a certificate (full chain) and key from the seed CA",
		Long: `issue writes <dir>/issued/<name>.crt (leaf followed by the root) and
<name>.key. An existing certificate that already covers exactly the requested
names and stays valid for more than 30 days is reused unchanged.`,
		Example: `  metacircular ca issue mcns --dns mcns.svc.mcp.metacircular.net,localhost --ip 127.0.0.1
  metacircular ca issue edge --dns edge.mcp.metacircular.net --validity 90d`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseValidity(validity)
			if err != nil {
				return err
			}
			ca, err := seedpki.Load(caDir())
			if err != nil {
				return err
			}
			issued, err := ca.Issue(args[0], seedpki.IssueRequest{DNSNames: dnsNames, IPs: ips, Validity: d})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "certificate: %s\nkey: %s\nexpires: %s\n",
				issued.CertPath, issued.KeyPath, issued.Leaf.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	issueCmd.Flags().StringSliceVar(&dnsNames, "dns", nil, "DNS names, comma-separated")
	issueCmd.Flags().IPSliceVar(&ips, "ip", nil, "IP addresses, comma-separated")
	issueCmd.Flags().StringVar(&validity, "validity", "397d", "lifetime: days (\"90d\") or a Go duration (\"720h\")")

	cmd.AddCommand(initCmd, issueCmd)
	return cmd
}

// parseValidity accepts a whole number of days ("397d") or a Go duration.
func parseValidity(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("invalid --validity %q: want days like \"397d\" or a duration like \"720h\"", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("invalid --validity %q: want days like \"397d\" or a duration like \"720h\"", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("invalid --validity %q: must be positive", s)
	}
	return d, nil
}

func fingerprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  metacircular version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "metacircular %s\n", version)
		},
	}
}
