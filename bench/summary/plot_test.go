package main

import (
	"strings"
	"testing"
)

const sampleResult = `## mc-proxy L7, backend http1: wrk (h1)
  Latency Distribution
     50%    9.79ms
     75%   12.62ms
     90%   15.75ms
     99%   23.10ms
Requests/sec:   6135.69
## mc-proxy L7, backend http1: h2load (h2)
## haproxy L4: wrk (h1)
  Latency Distribution
     50%  800.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
## caddy L7, backend http1: wrk (h1)
  Latency Distribution
     50%    9.79ms
`

func TestWrkLatencies(t *testing.T) {
	rows := wrkLatencies([]byte(sampleResult))
	if len(rows) != 2 {
		t.Fatalf("rows %+v, want mc-proxy and haproxy L4 (caddy's distribution is incomplete)", rows)
	}
	if rows[0].label != "mc-proxy L7, backend http1" || rows[0].ms[3] != 23.10 {
		t.Errorf("row 0 = %+v", rows[0])
	}
	if rows[1].label != "haproxy L4" || rows[1].ms[0] != 0.8 || rows[1].ms[3] != 1500 {
		t.Errorf("row 1 = %+v (us and s converted to ms)", rows[1])
	}
	svg := string(latencySVG("x.txt", rows))
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<rect") != 1+4+8 || !strings.Contains(svg, "haproxy L4") {
		t.Errorf("svg:\n%s", svg)
	}
}
