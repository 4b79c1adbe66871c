package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"git.metacircular.net/metacircular/mcdsl/db"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/store"
	"git.metacircular.net/metacircular/mcns/internal/zonefile"
)

// OpenDB opens MCNS's database with its migrations applied (for the init,
// status and snapshot verbs).
func OpenDB(ctx context.Context, cfg *Config) (*db.DB, error) {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return nil, err
	}
	return st.DB(), nil
}

// Init creates the database and every configured zone that does not exist
// yet. With zoneFile it first imports an RFC 1035 zone file as origin (the
// file's SOA owner when empty), all or nothing, refusing a zone that
// exists. It reports what it did on out.
func Init(ctx context.Context, cfg *Config, zoneFile, origin string, out io.Writer) error {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	// The import comes first: it creates its zone from the file's SOA and
	// refuses a zone that exists, so a seeded zone can be imported on a
	// fresh database.
	if zoneFile != "" {
		f, err := os.Open(zoneFile) //nolint:gosec // operator-named file
		if err != nil {
			return err
		}
		z, n, err := zonefile.Import(ctx, st, f, origin)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("import %s: %w", zoneFile, err)
		}
		fmt.Fprintf(out, "imported zone %s from %s: %d records (serial %d)\n", z.Name, zoneFile, n, z.Serial)
	}
	created, err := SeedZones(ctx, cfg, records.New(st, cfg.MCNS.AgentAccounts, logging.Discard()))
	for _, z := range created {
		fmt.Fprintf(out, "created zone %s (serial %d)\n", z.Name, z.Serial)
	}
	if err != nil {
		return err
	}
	if len(created) == 0 && zoneFile == "" {
		fmt.Fprintf(out, "mcns: %s has every configured zone; nothing changed\n", cfg.Database.Path)
	}
	return nil
}

// zoneSummary is one zone in status output.
type zoneSummary struct {
	Name    string `json:"name"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
}

type summary struct {
	Database string        `json:"database"`
	DNS      string        `json:"dns"`
	Zones    []zoneSummary `json:"zones"`
}

// Status prints the zones, their serials and record counts.
func Status(ctx context.Context, cfg *Config, out io.Writer, asJSON bool) error {
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	sum := summary{Database: cfg.Database.Path, DNS: cfg.DNS.ListenAddr, Zones: []zoneSummary{}}
	zones, err := st.ListZones(ctx)
	if err != nil {
		return err
	}
	for _, z := range zones {
		recs, err := st.Records(ctx, z.Name, "", "")
		if err != nil {
			return err
		}
		sum.Zones = append(sum.Zones, zoneSummary{Name: z.Name, Serial: z.Serial, Records: len(recs)})
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	fmt.Fprintf(out, "database:   %s\ndns:        %s\nzones:      %d\n", sum.Database, sum.DNS, len(sum.Zones))
	for _, z := range sum.Zones {
		fmt.Fprintf(out, "  %s  serial %d, %d records\n", z.Name, z.Serial, z.Records)
	}
	return nil
}
