package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/db"
)

// Result describes a snapshot file that was written.
type Result struct {
	// Path is the snapshot file's path, absolute.
	Path string `json:"path"`
	// Size is the snapshot file's size in bytes.
	Size int64 `json:"size"`
	// CreatedAt is when the snapshot was taken, in UTC.
	CreatedAt time.Time `json:"created_at"`
}

// stampLayout is the UTC timestamp in snapshot file names.
const stampLayout = "20060102T150405Z"

// maxSameSecond bounds the suffixes tried for snapshots taken within one
// second; reaching it means something is looping, not a busy operator.
const maxSameSecond = 1000

// serviceName is what a service name may look like: it becomes part of a
// file name, so no separators, dots or spaces.
var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// now is time.Now; a variable so tests can take two snapshots within the
// same second deterministically.
var now = time.Now

func checkService(service string) error {
	if !serviceName.MatchString(service) {
		return fmt.Errorf("service name %q: want lowercase letters, digits and '-', starting with a letter, at most 63 characters", service)
	}
	return nil
}

// Take writes a consistent copy of the database d, made with VACUUM INTO
// while writers continue, to dir/<service>-<UTC yyyymmddThhmmssZ>.db with
// mode 0600. A second snapshot within the same second gets a "-1", "-2", ...
// suffix before ".db". An empty dir means the backups directory beside the
// database file; it is created 0700 if missing.
func Take(ctx context.Context, d *db.DB, dir, service string) (Result, error) {
	if d == nil {
		return Result{}, errors.New("take snapshot: no database")
	}
	if err := checkService(service); err != nil {
		return Result{}, fmt.Errorf("take snapshot: %w", err)
	}
	if dir == "" {
		dir = filepath.Join(filepath.Dir(d.Path()), "backups")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Result{}, fmt.Errorf("take snapshot: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("take snapshot: %w", err)
	}
	created := now().UTC()
	dest, err := reserve(dir, service+"-"+created.Format(stampLayout))
	if err != nil {
		return Result{}, fmt.Errorf("take snapshot: %w", err)
	}
	// Snapshot renames the finished copy over the reserved name.
	if err := d.Snapshot(ctx, dest); err != nil {
		_ = os.Remove(dest)
		return Result{}, fmt.Errorf("take snapshot: %w", err)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		return Result{}, fmt.Errorf("take snapshot: %w", err)
	}
	return Result{Path: dest, Size: fi.Size(), CreatedAt: created}, nil
}

// reserve creates an empty 0600 file named stem.db in dir, or stem-N.db for
// the smallest free N, and returns its path. Creating it with O_EXCL makes
// the name unique even against concurrent snapshots in other processes.
func reserve(dir, stem string) (string, error) {
	for i := 0; i < maxSameSecond; i++ {
		name := stem + ".db"
		if i > 0 {
			name = stem + "-" + strconv.Itoa(i) + ".db"
		}
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, db.FileMode) //nolint:gosec // a name Take builds in the configured backups directory
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := f.Close(); err != nil {
			_ = os.Remove(p)
			return "", err
		}
		return p, nil
	}
	return "", fmt.Errorf("%d snapshots named %s already exist", maxSameSecond, stem)
}

// snapshotFile is a file name Take produces, parsed.
type snapshotFile struct {
	name string
	at   time.Time
	seq  int
}

// parseName parses a file name produced by Take for service; ok is false
// for anything else, including other services whose names share a prefix.
func parseName(name, service string) (snapshotFile, bool) {
	rest, ok := strings.CutPrefix(name, service+"-")
	if !ok {
		return snapshotFile{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".db")
	if !ok || len(rest) < len(stampLayout) {
		return snapshotFile{}, false
	}
	at, err := time.Parse(stampLayout, rest[:len(stampLayout)])
	if err != nil {
		return snapshotFile{}, false
	}
	seq := 0
	if suffix := rest[len(stampLayout):]; suffix != "" {
		digits, ok := strings.CutPrefix(suffix, "-")
		if !ok || digits == "" || digits[0] == '0' || strings.Trim(digits, "0123456789") != "" {
			return snapshotFile{}, false
		}
		if seq, err = strconv.Atoi(digits); err != nil {
			return snapshotFile{}, false
		}
	}
	return snapshotFile{name: name, at: at, seq: seq}, true
}

// Prune deletes all but the newest keep snapshots of service in dir, as
// ordered by the timestamp and suffix in their names, and returns the paths
// it removed. Files not named the way Take names them are never touched. A
// missing dir holds no snapshots.
func Prune(dir, service string, keep int) ([]string, error) {
	if err := checkService(service); err != nil {
		return nil, fmt.Errorf("prune snapshots: %w", err)
	}
	if keep < 0 {
		return nil, fmt.Errorf("prune snapshots: keep %d: must not be negative", keep)
	}
	if dir == "" {
		return nil, errors.New("prune snapshots: empty directory")
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune snapshots: %w", err)
	}
	var snaps []snapshotFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if s, ok := parseName(e.Name(), service); ok {
			snaps = append(snaps, s)
		}
	}
	if len(snaps) <= keep {
		return nil, nil
	}
	slices.SortFunc(snaps, func(a, b snapshotFile) int {
		return cmp.Or(b.at.Compare(a.at), cmp.Compare(b.seq, a.seq))
	})
	var removed []string
	for _, s := range snaps[keep:] {
		p := filepath.Join(dir, s.name)
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("prune snapshots: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}
