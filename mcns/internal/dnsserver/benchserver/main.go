// Command benchserver is the MCNS side of bench/mcns/run.sh (it lives
// here because Go lets only mcns/ import mcns/internal): it creates a
// temporary store holding the zone bench.test with about a thousand
// records, writes the same zone as a zone file (for knot), as unbound
// local-data (for unbound) and a dnsperf query file, then serves the zone
// with the MCNS DNS server (dnsserver.New(...).Serve, no forwarding) until
// it is interrupted. With -cpuprofile and -allocprofile it profiles the
// serving: the CPU from the first query on, and every allocation made
// while serving (none before: filling the store is not what is measured).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/dnsserver"
	"git.metacircular.net/metacircular/mcns/internal/rr"
	"git.metacircular.net/metacircular/mcns/internal/store"
	"git.metacircular.net/metacircular/mcns/internal/zonefile"
)

const zoneName = "bench.test."

func main() {
	dir := flag.String("dir", "", "directory for the store and the files written for the peers (required)")
	listen := flag.String("listen", "127.0.0.1:5300", "UDP and TCP address to serve on")
	hosts := flag.Int("hosts", 400, "host names; each gets A, AAAA and a TXT or CNAME, about 2.5 records per host")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the serving to this file on exit")
	allocProfile := flag.String("allocprofile", "", "write a profile of every allocation made while serving to this file on exit")
	flag.Parse()
	if *allocProfile != "" {
		// Sampling starts when serving does (run sets the rate).
		runtime.MemProfileRate = 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *dir, *listen, *hosts, *cpuProfile, *allocProfile != "")
	stop()
	if err == nil && *allocProfile != "" {
		err = writeAllocProfile(*allocProfile)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchserver: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, listen string, hosts int, cpuProfile string, allocs bool) error {
	if dir == "" || hosts < 1 {
		return errors.New("-dir is required and -hosts must be positive")
	}
	st, err := store.Open(ctx, filepath.Join(dir, "mcns.db"), nil)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	n, err := fill(ctx, st, hosts)
	if err != nil {
		return err
	}
	if err := writePeerFiles(ctx, st, dir, hosts); err != nil {
		return err
	}
	cfg := dnsserver.Config{ListenAddr: listen}
	if err := cfg.Validate(); err != nil {
		return err
	}
	srv, err := dnsserver.New(st, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile) //nolint:gosec // the path the benchmark script names
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if allocs {
		// Every allocation: the answers from the cache make none, so the
		// few the cache misses make are the whole story.
		runtime.MemProfileRate = 1
	}
	fmt.Printf("benchserver: serving %s with %d records on %s\n", zoneName, n, listen)
	return srv.ListenAndServe(ctx)
}

// writeAllocProfile writes the heap profile, whose alloc_space and
// alloc_objects samples count the allocations sampled (see main).
func writeAllocProfile(path string) error {
	f, err := os.Create(path) //nolint:gosec // the path the benchmark script names
	if err != nil {
		return err
	}
	// The profile holds what the last completed GC cycle published.
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("write allocation profile: %w", err)
	}
	return f.Close()
}

// fill creates the zone: NS and MX at the apex, and per host an A and an
// AAAA record plus, alternately, a TXT record or a CNAME alias.
func fill(ctx context.Context, st *store.Store, hosts int) (int, error) {
	z := dnsdata.Zone{Name: zoneName}
	if err := rr.ValidateZone(&z); err != nil {
		return 0, err
	}
	if _, err := st.CreateZone(ctx, z); err != nil {
		return 0, err
	}
	recs := [][3]string{{"@", "NS", "ns." + zoneName}, {"ns", "A", "10.53.0.1"}, {"@", "MX", "10 ns." + zoneName}}
	for i := range hosts {
		h := fmt.Sprintf("host-%04d", i)
		recs = append(recs,
			[3]string{h, "A", fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)},
			[3]string{h, "AAAA", fmt.Sprintf("fd00::%x", i)})
		if i%2 == 0 {
			recs = append(recs, [3]string{h, "TXT", fmt.Sprintf("host %d of the benchmark zone", i)})
		} else {
			recs = append(recs, [3]string{"alias-" + h, "CNAME", h + "." + zoneName})
		}
	}
	for _, r := range recs {
		rec := dnsdata.Record{Name: r[0], Type: r[1], Value: r[2]}
		if err := rr.Validate(zoneName, z.TTL, &rec); err != nil {
			return 0, err
		}
		if _, err := st.CreateRecord(ctx, rec); err != nil {
			return 0, err
		}
	}
	return len(recs), nil
}

// writePeerFiles writes the zone for knot (bench.test.zone), for unbound
// (unbound-local.conf, local-zone and local-data lines) and the dnsperf
// queries (queries.txt): every host's A, AAAA, TXT and alias questions, and
// a missing name (NXDOMAIN) for one query in ten.
func writePeerFiles(ctx context.Context, st *store.Store, dir string, hosts int) error {
	var zf strings.Builder
	if err := zonefile.Export(ctx, st, zoneName, &zf); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.test.zone"), []byte(zf.String()), 0o600); err != nil {
		return fmt.Errorf("write zone file: %w", err)
	}

	z, err := st.GetZone(ctx, zoneName)
	if err != nil {
		return err
	}
	recs, err := st.Records(ctx, zoneName, "", "")
	if err != nil {
		return err
	}
	var ub strings.Builder
	fmt.Fprintf(&ub, "local-zone: %q static\n", zoneName)
	fmt.Fprintf(&ub, "local-data: '%s'\n", rr.SOA(z).String())
	for _, rec := range recs {
		x, err := rr.ToRR(rec)
		if err != nil {
			return err
		}
		fmt.Fprintf(&ub, "local-data: '%s'\n", x.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "unbound-local.conf"), []byte(ub.String()), 0o600); err != nil {
		return fmt.Errorf("write unbound data: %w", err)
	}

	var q strings.Builder
	for i := range hosts {
		h := fmt.Sprintf("host-%04d.%s", i, zoneName)
		fmt.Fprintf(&q, "%s A\n%s AAAA\n", h, h)
		if i%2 == 0 {
			fmt.Fprintf(&q, "%s TXT\n", h)
		} else {
			fmt.Fprintf(&q, "alias-%s A\n", h)
		}
		if i%3 == 0 {
			fmt.Fprintf(&q, "missing-%04d.%s A\n", i, zoneName)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "queries.txt"), []byte(q.String()), 0o600); err != nil {
		return fmt.Errorf("write queries: %w", err)
	}
	return nil
}
