// Package cli holds what the platform's command-line tools share: output as
// an aligned table or, with --json, indented JSON; and the per-user session
// file (mode 0600, written atomically) in which "login" keeps the server,
// CA and token for later commands.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
)

// Print writes v as indented JSON when asJSON, else the table that table
// writes, aligned in columns.
func Print(out io.Writer, asJSON bool, v any, table func(w *tabwriter.Writer)) error {
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// SessionPath is the default session file of a tool:
// $XDG_CONFIG_HOME/<tool>/session.json (or ~/.config/...).
func SessionPath(tool string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, tool, "session.json")
}

// LoadSession reads the session file into dst. A missing file leaves dst
// as it is; an unreadable or corrupt one is an error naming the file.
func LoadSession(path string, dst any) error {
	b, err := os.ReadFile(path) //nolint:gosec // the user's own session file
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("session %s: %w", path, err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("session %s: %w (delete it and log in again)", path, err)
	}
	return nil
}

// SaveSession writes v to the session file, mode 0600, atomically.
func SaveSession(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("session %s: %w", path, err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("session %s: %w", path, err)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
