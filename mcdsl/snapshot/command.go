package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// OpenFunc opens a service's database for the snapshot command and says
// where snapshots go (empty for the backups directory beside the database)
// and under which service name.
type OpenFunc func(ctx context.Context) (d *db.DB, dir, service string, err error)

// Command returns the `snapshot` CLI verb every service binary mounts. It
// calls open (typically: load the service config, open its database), takes
// one snapshot with Take, closes the database and prints the snapshot's
// path and size, or the Result as JSON with --json.
func Command(open OpenFunc) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Write a consistent copy of the database to the backups directory",
		Long: `Write a consistent copy of the service's SQLite database, taken with
VACUUM INTO while the service keeps running, to
<backups>/<service>-<UTC yyyymmddThhmmssZ>.db with mode 0600.
The backups directory defaults to backups/ beside the database.`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx := cmd.Context()
			d, dir, service, err := open(ctx)
			if err != nil {
				return fmt.Errorf("snapshot: %w", err)
			}
			if d == nil {
				return errors.New("snapshot: no database opened")
			}
			defer func() {
				if cerr := d.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("snapshot: close database: %w", cerr)
				}
			}()
			res, err := Take(ctx, d, dir, service)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "PATH\tSIZE\tCREATED")
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\n", res.Path, formatSize(res.Size), res.CreatedAt.Format(time.RFC3339))
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON: path, size (bytes), created_at")
	return cmd
}

// formatSize renders a byte count with binary units for people.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
