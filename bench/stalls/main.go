// Command stalls measures how much of a CPU this machine withholds from a
// thread that wants all of it: it spins on one thread for -d, reading the
// clock, and prints the gaps (benchkit.Stalls). bench/mcns/run.sh runs it
// pinned to the servers' CPU before and after its rounds, so that a
// result file says how much of its latency tail the machine accounts for.
//
// Examples:
//
//	go run ./bench/stalls -d 5s
//	taskset -c 0 go run ./bench/stalls
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"git.metacircular.net/metacircular/bench/internal/benchkit"
)

func main() {
	d := flag.Duration("d", 5*time.Second, "how long to spin")
	flag.Parse()
	if *d <= 0 || *d > time.Minute {
		fmt.Fprintln(os.Stderr, "stalls: -d must be between 0 and 1m")
		os.Exit(2)
	}
	fmt.Println(benchkit.Stalls(*d))
}
