package server

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcproxy/client"
	"git.metacircular.net/metacircular/mcproxy/internal/report"
	"git.metacircular.net/metacircular/mcproxy/internal/store"
)

// statusTimeout bounds the status verb's call to the admin socket.
const statusTimeout = 15 * time.Second

// OpenDB opens mc-proxy's database with its migrations applied (for the
// snapshot verb).
func OpenDB(ctx context.Context, cfg *Config) (*db.DB, error) {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return nil, err
	}
	return st.DB(), nil
}

// Init creates the database (applying its migrations) and seeds it from
// mc-proxy.toml if it has never held state — what the server does at
// every start, so running it first is optional and running it again
// changes nothing. It reports what it did and every difference between
// the TOML and the database on out.
func Init(ctx context.Context, cfg *Config, out io.Writer) error {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	seeded, err := st.Seed(ctx, cfg.TOMLRoutes(), cfg.Firewall.Rules())
	if err != nil {
		return err
	}
	if seeded {
		fmt.Fprintf(out, "%s: seeded %s from the configuration (%d routes, %d firewall rules)\n",
			ServiceName, cfg.Database.Path, len(cfg.TOMLRoutes()), len(cfg.Firewall.Rules()))
	} else {
		fmt.Fprintf(out, "%s: %s was seeded before; the database is the source of truth, nothing changed\n",
			ServiceName, cfg.Database.Path)
	}
	diff, err := st.Diff(ctx, cfg.TOMLRoutes(), cfg.Firewall.Rules())
	if err != nil {
		return err
	}
	if len(diff) > 0 {
		fmt.Fprintf(out, "mc-proxy.toml and the database differ (%d); the database is served:\n", len(diff))
		for _, d := range diff {
			fmt.Fprintf(out, "  %s\n", d)
		}
	}
	return nil
}

// Status asks the running mc-proxy, over its admin socket, for its
// listeners, counts, connections and TOML/database divergence, and
// prints them as "mcproxyctl status" does.
func Status(ctx context.Context, cfg *Config, out io.Writer, asJSON bool) error {
	c, err := client.New(cfg.Server.AdminSocket)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return fmt.Errorf("%w (is mc-proxy serving on %s?)", err, cfg.Server.AdminSocket)
	}
	return cli.Print(out, asJSON, st, func(tw *tabwriter.Writer) { report.Status(tw, st) })
}
