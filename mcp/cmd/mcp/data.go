package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func (a *app) pushCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "push SERVICE LOCAL [PATH]",
		Short: "Copy a local file into a service's data directory on its node",
		Long: `push copies LOCAL to PATH (default: LOCAL's base name) inside the service's
data directory (/srv/<service>) on its node, atomically, keeping LOCAL's
permission bits. Admins only.`,
		Example: "  mcp push hello ./hello.toml\n  mcp push mcns ./certs/mcns.crt certs/mcns.crt",
		Args:    cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.nodeOf(args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			dest := filepath.Base(args[1])
			if len(args) == 3 {
				dest = args[2]
			}
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			resp, err := c.PushFile(ctx, args[0], dest, st.Mode().Perm(), f)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%s (%d bytes)\n", n.Name, resp.GetPath(), resp.GetSize())
			return nil
		},
	}
}

func (a *app) pullCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "pull SERVICE PATH [LOCAL]",
		Short:   "Copy a file of a service's data directory to a local file (or - for stdout)",
		Example: "  mcp pull hello hello.toml\n  mcp pull mcns mcns.toml - | less",
		Args:    cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.nodeOf(args[0])
			if err != nil {
				return err
			}
			local := filepath.Base(args[1])
			if len(args) == 3 {
				local = args[2]
			}
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			return writeTo(local, cmd.OutOrStdout(), func(w io.Writer) (int64, error) { return c.PullFile(ctx, args[0], args[1], w) })
		},
	}
}

// writeTo writes to path through a temporary file renamed into place on
// success (or to stdout for "-").
func writeTo(path string, stdout io.Writer, fill func(io.Writer) (int64, error)) error {
	if path == "-" {
		_, err := fill(stdout)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	n, err := fill(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s (%d bytes)\n", path, n)
	return nil
}

func (a *app) exportCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export SERVICE",
		Short: "Download a service's data directory as tar.zst",
		Long: `export runs the service's snapshot method (its definition's [snapshot]) and
streams its data directory as tar.zst: SQLite databases captured with
VACUUM INTO, live WAL/SHM files and backups/ left out. Admins only.`,
		Example: "  mcp export mcq -o mcq.tar.zst\n  mcp export mcq -o - | zstd -d | tar t",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.nodeOf(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0] + ".tar.zst"
			}
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			return writeTo(out, cmd.OutOrStdout(), func(w io.Writer) (int64, error) { return c.Export(ctx, args[0], w) })
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "archive file (default SERVICE.tar.zst; - for stdout)")
	return cmd
}

func (a *app) importCmd() *cobra.Command {
	var replace bool
	cmd := &cobra.Command{
		Use:   "import SERVICE ARCHIVE",
		Short: "Upload a tar.zst archive into a service's data directory",
		Long: `import unpacks ARCHIVE (from mcp export) into the service's data directory on
its node, which must be absent or empty; --replace moves a non-empty one
aside first (the service must be stopped). Unsafe entries (absolute paths,
"..", links out) are refused and nothing is written. Admins only.`,
		Example: "  mcp import mcq mcq.tar.zst --node orion\n  mcp stop mcq && mcp import mcq mcq.tar.zst --replace && mcp start mcq",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.nodeOf(args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			c, err := a.dial(ctx, n)
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			resp, err := c.Import(ctx, args[0], replace, f)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%s (%d bytes unpacked)\n", n.Name, resp.GetPath(), resp.GetBytes())
			return nil
		},
	}
	cmd.Flags().BoolVar(&replace, "replace", false, "move a non-empty data directory aside first (service stopped)")
	return cmd
}
