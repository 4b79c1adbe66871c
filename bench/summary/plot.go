package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The latency plot: wrk's latency percentiles (50, 75, 90, 99%) of each
// proxy under the h1 load, from the newest mc-proxy result file, as an
// SVG bar chart beside it (mcproxy-latency.svg), where one look compares
// the peers' tails.

// plotRows are the rows of the mc-proxy result plotted, in order.
var plotRows = []string{
	"mc-proxy L7, backend http1", "haproxy L7, backend http1", "nginx L7, backend http1", "caddy L7, backend http1",
	"mc-proxy L7, backend tls", "haproxy L7, backend tls", "nginx L7, backend tls",
	"mc-proxy L4", "haproxy L4",
}

var percentiles = []string{"50%", "75%", "90%", "99%"}

// series is one row's percentiles in milliseconds.
type series struct {
	label string
	ms    []float64
}

// wrkLatencies reads the h1 latency distribution of every plotted row
// from a result file.
func wrkLatencies(data []byte) []series {
	var out []series
	for _, label := range plotRows {
		head := "## " + label + ": wrk (h1)\n"
		i := strings.Index(string(data), head)
		if i < 0 {
			continue
		}
		section := string(data[i+len(head):])
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
		s := series{label: label}
		for _, p := range percentiles {
			m := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(p) + `\s+([0-9.]+)(us|ms|s)\s*$`).FindStringSubmatch(section)
			if m == nil {
				break
			}
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				break
			}
			switch m[2] {
			case "us":
				v /= 1000
			case "s":
				v *= 1000
			}
			s.ms = append(s.ms, v)
		}
		if len(s.ms) == len(percentiles) {
			out = append(out, s)
		}
	}
	return out
}

// latencySVG draws the series as horizontal bars, one group per row, one
// bar per percentile, on a common millisecond scale.
func latencySVG(source string, rows []series) []byte {
	const (
		left, right, top, barH, gap, width = 230, 60, 50, 9, 14, 760
	)
	colors := []string{"#9ecae1", "#6baed6", "#3182bd", "#08519c"}
	maxMS := 0.0
	for _, r := range rows {
		for _, v := range r.ms {
			maxMS = max(maxMS, v)
		}
	}
	scale := float64(width-left-right) / maxMS
	height := top + len(rows)*(len(percentiles)*barH+gap) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="13">HTTP/1.1 latency percentiles (wrk -t1 -c64, ms; lower is better), %s</text>`+"\n", source)
	for i, p := range percentiles {
		x := left + i*70
		fmt.Fprintf(&b, `<rect x="%d" y="28" width="10" height="10" fill="%s"/><text x="%d" y="37">p%s</text>`+"\n", x, colors[i], x+14, strings.TrimSuffix(p, "%"))
	}
	y := top
	for _, r := range rows {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+len(percentiles)*barH/2+4, r.label)
		for i, v := range r.ms {
			w := max(1, int(v*scale))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", left, y, w, barH-1, colors[i])
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9">%.2f</text>`+"\n", left+w+4, y+barH-2, v)
		}
		y += len(percentiles)*barH + gap
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// latencyPlot returns the SVG of the newest mc-proxy result in dir and
// the result file's name; no SVG when there is no result with the
// distributions.
func latencyPlot(dir string) (svg []byte, source string, err error) {
	path, err := latest(dir, "mcproxy")
	if err != nil || path == "" {
		return nil, "", err
	}
	data, err := os.ReadFile(path) //nolint:gosec // a result file found by latest
	if err != nil {
		return nil, "", err
	}
	rows := wrkLatencies(data)
	if len(rows) == 0 {
		return nil, "", errors.New("no wrk latency distributions in " + filepath.Base(path))
	}
	return latencySVG(filepath.Base(path), rows), filepath.Base(path), nil
}
