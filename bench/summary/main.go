// Command summary writes bench/results/SUMMARY.md: for every figure the
// platform has a target for, the latest committed result beside the
// target, whether it is met, and the result file it comes from, so one
// screen shows where each service stands against its peers; and beside it
// mcproxy-latency.svg, the latency percentiles of mc-proxy and its peers
// (plot.go).
//
//	go run ./bench/summary              (make bench runs it after bench/run.sh)
//	go run ./bench/summary -check       exit non-zero if SUMMARY.md or the plot is stale
//
// The figures are read from the newest result file of each benchmark
// (<name>-<UTC stamp>.txt, so the names sort by time) with the regular
// expressions below, which match the lines the benchmarks print; a figure
// whose line is missing is listed as "not in <file>" rather than dropped,
// so a format change shows instead of hiding a result.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// figure is one target: the value found by pattern's first submatch in
// the newest result of bench, compared with target (higher is better
// unless lowerIsBetter).
type figure struct {
	bench, name   string
	pattern       string
	target        float64
	lowerIsBetter bool
	unit          string // "x" for ratios
}

var figures = []figure{
	{"mcns", "MCNS / knot, queries/s (1 core, paired median)", `MCNS/knot: queries/s ([0-9.]+)`, 1.0, false, "x"},
	{"mcns", "MCNS / knot, p99 @10k q/s (1 core, pooled)", `MCNS/knot: .*p99 latency @rate ([0-9.]+)`, 1.0, true, "x"},
	{"mcns", "MCNS / CoreDNS, queries/s (1 core, paired median)", `MCNS/coredns: queries/s ([0-9.]+)`, 1.0, false, "x"},
	// mc-proxy's req/s and p99 figures are the medians of its paired rounds
	// (measured seconds apart from haproxy's, round after round).
	{"mcproxy", "mc-proxy L7 / haproxy, h1 req/s (paired median)", `mc-proxy L7/haproxy paired \(median of \d+\)\s+h1 req/s ([0-9.]+)`, 0.8, false, "x"},
	{"mcproxy", "mc-proxy L7 / haproxy, h1 p99 (paired median)", `mc-proxy L7/haproxy paired \(median of \d+\)\s+h1 req/s [0-9.]+\s+h1 p99 ([0-9.]+)`, 1.5, true, "x"},
	{"mcproxy", "mc-proxy L7 / haproxy, h2 req/s (paired median)", `mc-proxy L7/haproxy paired \(median of \d+\)\s+.*h2 req/s ([0-9.]+)`, 0.8, false, "x"},
	{"mcproxy", "mc-proxy L4 / haproxy, h1 req/s (paired median)", `mc-proxy L4/haproxy paired \(median of \d+\)\s+h1 req/s ([0-9.]+)`, 0.9, false, "x"},
	{"mcproxy", "mc-proxy / haproxy, handshakes/s", `mc-proxy L7/haproxy(?: backend http1)?\s+.*handshakes/s ([0-9.]+)`, 1.0, false, "x"},
	{"mcias", "MCIAS validate / empty handler", `validate/empty: ([0-9.]+)`, 0.7, false, "x"},
	{"metacrypt", "Metacrypt / step-ca, issuances/s (CSR)", `stored P-256 issuances, metacrypt CSR\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)`, 1.0, false, "x"},
	{"metacrypt", "Metacrypt stored issuances/s (CSR)", `stored P-256 issuances, metacrypt CSR\s+([0-9.]+)`, 2000, false, "/s"},
	{"metacrypt", "Metacrypt / step-ca, ACME orders/s", `ACME orders, Retry-After \(x/crypto/acme\)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)`, 1.0, false, "x"},
	{"mcr", "MCR / distribution, push 200 MiB", `push 200 MiB single-layer \(MiB/s\)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)`, 1.0, false, "x"},
	{"mcr", "MCR / distribution, pull 200 MiB", `pull 200 MiB single-layer \(MiB/s\)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)`, 1.0, false, "x"},
	{"mcr", "MCR / distribution, manifest GETs/s", `manifest GETs \(req/s\)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)`, 1.0, false, "x"},
	{"mcr", "MCR single-layer pull / cp", `single-layer pull / cp\s+([0-9.]+)`, 0.5, false, "x"},
	{"mcp", "MCP deploy → serving p99 (s)", `deploy → serving over \d+ redeploys: p50 \S+ p99 ([0-9.]+)s`, 2.0, true, "s"},
}

func main() {
	dir := flag.String("dir", "bench/results", "the results directory")
	check := flag.Bool("check", false, "exit non-zero if SUMMARY.md differs from what would be written")
	flag.Parse()
	out, err := summary(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/summary:", err)
		os.Exit(1)
	}
	svg, source, err := latencyPlot(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/summary:", err)
		os.Exit(1)
	}
	files := map[string][]byte{filepath.Join(*dir, "SUMMARY.md"): out}
	if svg != nil {
		files[filepath.Join(*dir, "mcproxy-latency.svg")] = svg
		out = append(out, fmt.Sprintf("\nmc-proxy and its peers' HTTP/1.1 latency percentiles, from %s: [mcproxy-latency.svg](mcproxy-latency.svg)\n", source)...)
		files[filepath.Join(*dir, "SUMMARY.md")] = out
	}
	for path, data := range files {
		if *check {
			old, err := os.ReadFile(path) //nolint:gosec // a file this command writes in -dir
			if err != nil || !bytes.Equal(old, data) {
				fmt.Fprintf(os.Stderr, "bench/summary: %s is stale; run go run ./bench/summary\n", path)
				os.Exit(1)
			}
			continue
		}
		if err := os.WriteFile(path, data, 0o644); err != nil { //nolint:gosec // results are meant to be read
			fmt.Fprintln(os.Stderr, "bench/summary:", err)
			os.Exit(1)
		}
		fmt.Println("bench/summary: wrote", path)
	}
}

// latest returns the newest result file of bench in dir ("" if none).
func latest(dir, bench string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, bench+"-*.txt"))
	if err != nil {
		return "", err
	}
	stamp := regexp.MustCompile(`^` + regexp.QuoteMeta(bench) + `-\d{8}T\d{6}Z\.txt$`)
	m = slices.DeleteFunc(m, func(p string) bool { return !stamp.MatchString(filepath.Base(p)) })
	if len(m) == 0 {
		return "", nil
	}
	slices.Sort(m)
	return m[len(m)-1], nil
}

func summary(dir string) ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Benchmark summary\n\n")
	b.WriteString("Generated by `go run ./bench/summary` (run by `make bench`) from the newest result file of each\n")
	b.WriteString("benchmark in this directory; each file has the command, commit, machine, pinning, versions,\n")
	b.WriteString("load average and, where a target is missed, the profile and what bounds it. Ratios are\n")
	b.WriteString("ours / peer's; for latencies lower is better.\n\n")
	b.WriteString("| figure | latest | target | met | result file |\n|---|---|---|---|---|\n")
	files := map[string][]byte{}
	for _, f := range figures {
		path, err := latest(dir, f.bench)
		if err != nil {
			return nil, err
		}
		if path == "" {
			fmt.Fprintf(&b, "| %s | no result | %s | – | – |\n", f.name, targetText(f))
			continue
		}
		data, ok := files[path]
		if !ok {
			if data, err = os.ReadFile(path); err != nil { //nolint:gosec // a result file found by the glob above
				return nil, err
			}
			files[path] = data
		}
		base := filepath.Base(path)
		v, err := value(data, f.pattern)
		if err != nil {
			fmt.Fprintf(&b, "| %s | not in %s | %s | – | [%s](%s) |\n", f.name, base, targetText(f), base, base)
			continue
		}
		met := "yes"
		if (f.lowerIsBetter && v > f.target) || (!f.lowerIsBetter && v < f.target) {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | [%s](%s) |\n", f.name, valueText(v, f.unit), targetText(f), met, base, base)
	}
	return []byte(b.String()), nil
}

func value(data []byte, pattern string) (float64, error) {
	m := regexp.MustCompile(pattern).FindSubmatch(data)
	if m == nil {
		return 0, errors.New("no match")
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func valueText(v float64, unit string) string {
	switch unit {
	case "x":
		return strconv.FormatFloat(v, 'f', 2, 64) + "×"
	case "s":
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + unit
	}
}

func targetText(f figure) string {
	op := "≥"
	if f.lowerIsBetter {
		op = "≤"
	}
	return op + " " + valueText(f.target, f.unit)
}
