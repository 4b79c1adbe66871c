// Command hello is MCP's example service: "metacircular up" shows how to
// build it into an image, push it to MCR and deploy it, and the MCP
// end-to-end tests deploy, redeploy and recover it. It answers "hello
// <version>" (then $MARK when set) on :$PORT, /v1/health with 200 (500 when $FAIL_HEALTH is
// set), waits $SLEEP before listening when set, and drains on SIGTERM.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var version = "dev"

func main() {
	if d, err := time.ParseDuration(os.Getenv("SLEEP")); err == nil {
		time.Sleep(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/health", func(w http.ResponseWriter, _ *http.Request) {
		if os.Getenv("FAIL_HEALTH") != "" {
			http.Error(w, "hello "+version+" is unhealthy on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	answer := "hello " + version
	if mark := os.Getenv("MARK"); mark != "" {
		answer += " " + mark
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, answer)
	})
	srv := &http.Server{Addr: ":" + os.Getenv("PORT"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Println("hello", version, "listening on", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
