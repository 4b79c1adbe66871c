package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcdsl/snapshot"
)

// Def declares a service binary for Main. C is the service's
// configuration type.
type Def[C any] struct {
	// Name is the binary's and the service's name ("mcns"); the default
	// configuration is /srv/<Name>/<Name>.toml.
	Name string
	// Short and Long describe the service in --help.
	Short, Long string
	// Version is the build's version (-X main.version).
	Version string
	// Load reads and validates the configuration file.
	Load func(path string) (C, error)
	// Logging is the [log] section of a configuration.
	Logging func(C) logging.Config
	// ServerLong is the server verb's help text.
	ServerLong string
	// Build constructs the service on the runtime (see Run).
	Build func(ctx context.Context, cfg C, rt *Runtime) error

	// Database is the path of the service's SQLite database ("" for a
	// service that keeps no state).
	Database func(C) string
	// OpenDB opens the database with the service's migrations applied.
	// Services with a database set it; it drives the default init verb and
	// the snapshot verb.
	OpenDB func(ctx context.Context, cfg C) (*db.DB, error)

	// Init replaces the default init verb (which creates the database and
	// applies the migrations). It gets the configuration loader.
	Init func(load func() (C, error)) *cobra.Command
	// Status prints the service's state for the status verb: as a table,
	// or as JSON when asJSON.
	Status func(ctx context.Context, cfg C, out io.Writer, asJSON bool) error
	// Commands are extra verbs (mcias recover-admin, ...).
	Commands []func(load func() (C, error)) *cobra.Command
}

// Main runs the binary and exits: 0 on success, 1 with "name: error" on
// stderr otherwise.
func Main[C any](def Def[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Command(def).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", def.Name, err)
		os.Exit(1)
	}
}

// Command is the binary's root command (Main without the exit, for tests).
func Command[C any](def Def[C]) *cobra.Command {
	var cfgPath string
	root := &cobra.Command{
		Use:           def.Name,
		Short:         def.Short,
		Long:          def.Long,
		Version:       def.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/srv/"+def.Name+"/"+def.Name+".toml", "configuration file")
	load := func() (C, error) { return def.Load(cfgPath) }
	root.AddCommand(serverCmd(def, load), initCmd(def, load), statusCmd(def, load))
	if def.OpenDB != nil {
		root.AddCommand(snapshotCmd(def, load))
	}
	for _, c := range def.Commands {
		root.AddCommand(c(load))
	}
	return root
}

func serverCmd[C any](def Def[C], load func() (C, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Serve until SIGINT or SIGTERM",
		Long:  def.ServerLong,
		Example: fmt.Sprintf(`  %[1]s server --config /srv/%[1]s/%[1]s.toml
  %[1]s server    # the default configuration, /srv/%[1]s/%[1]s.toml`, def.Name),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			logger, err := logging.New(def.Logging(cfg), os.Stderr)
			if err != nil {
				return err
			}
			return Run(cmd.Context(), Options{Name: def.Name, Version: def.Version, Logger: logger},
				func(ctx context.Context, rt *Runtime) error { return def.Build(ctx, cfg, rt) })
		},
	}
}

func initCmd[C any](def Def[C], load func() (C, error)) *cobra.Command {
	if def.Init != nil {
		return def.Init(load)
	}
	short := "Create the database and apply its migrations"
	if def.OpenDB == nil {
		short = "Check the configuration (the service keeps no state to create)"
	}
	return &cobra.Command{
		Use:   "init",
		Short: short,
		Long: `init creates the service's database if it does not exist and applies every
migration; running it again changes nothing. A service without a database
has nothing to create and says so.`,
		Example: fmt.Sprintf("  %[1]s init --config /srv/%[1]s/%[1]s.toml", def.Name),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if def.OpenDB == nil {
				fmt.Fprintf(out, "%s keeps no state; nothing to initialize\n", def.Name)
				return nil
			}
			d, err := def.OpenDB(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer func() { _ = d.Close() }()
			versions, err := d.AppliedVersions(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: database %s ready (%d migrations applied)\n", def.Name, d.Path(), len(versions))
			return nil
		},
	}
}

func statusCmd[C any](def Def[C], load func() (C, error)) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Summarize the service's state",
		Example: fmt.Sprintf("  %[1]s status\n  %[1]s status --json", def.Name),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			if def.Database != nil {
				if path := def.Database(cfg); path != "" {
					if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("database %s does not exist (run %s init)", path, def.Name)
					}
				}
			}
			if def.Status == nil {
				return defaultStatus(cmd.Context(), def, cfg, cmd.OutOrStdout(), asJSON)
			}
			return def.Status(cmd.Context(), cfg, cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func defaultStatus[C any](ctx context.Context, def Def[C], cfg C, out io.Writer, asJSON bool) error {
	st := struct {
		Service    string `json:"service"`
		Database   string `json:"database,omitempty"`
		Migrations int    `json:"migrations"`
	}{Service: def.Name}
	if def.OpenDB != nil {
		d, err := def.OpenDB(ctx, cfg)
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		v, err := d.AppliedVersions(ctx)
		if err != nil {
			return err
		}
		st.Database, st.Migrations = d.Path(), len(v)
	}
	if asJSON {
		return writeJSON(out, st)
	}
	if st.Database == "" {
		fmt.Fprintf(out, "%s keeps no state\n", def.Name)
		return nil
	}
	fmt.Fprintf(out, "database:   %s\nmigrations: %d\n", st.Database, st.Migrations)
	return nil
}

func snapshotCmd[C any](def Def[C], load func() (C, error)) *cobra.Command {
	cmd := snapshot.Command(func(ctx context.Context) (*db.DB, string, string, error) {
		cfg, err := load()
		if err != nil {
			return nil, "", "", err
		}
		if def.Database != nil {
			if path := def.Database(cfg); path != "" {
				if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
					return nil, "", "", fmt.Errorf("database %s does not exist", path)
				}
			}
		}
		d, err := def.OpenDB(ctx, cfg)
		if err != nil {
			return nil, "", "", err
		}
		return d, "", def.Name, nil
	})
	cmd.Example = fmt.Sprintf("  %[1]s snapshot --config /srv/%[1]s/%[1]s.toml\n  %[1]s snapshot --json", def.Name)
	return cmd
}

// writeJSON prints v as indented JSON.
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
