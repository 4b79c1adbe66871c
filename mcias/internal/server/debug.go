package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof" //nolint:gosec // served only on the opt-in loopback debug.pprof_addr listener, never on DefaultServeMux's listeners

	"git.metacircular.net/metacircular/mcdsl/httpserver"
	"git.metacircular.net/metacircular/mcdsl/service"
)

// DebugConfig is the [debug] section: diagnostics that are off unless an
// operator turns them on.
type DebugConfig struct {
	// PprofAddr, when set, serves Go's runtime profiles (net/http/pprof
	// under /debug/pprof/) over plain HTTP on this address, which must be
	// a loopback one: a CPU profile or trace costs the server CPU for as
	// long as a caller asks, and goroutine dumps show its internals. The
	// platform's 30 s write timeout (mcdsl/httpserver) bounds a profile's
	// ?seconds= below 30.
	PprofAddr string `toml:"pprof_addr"`
}

// Validate checks the section; errors name the key.
func (c DebugConfig) Validate() error {
	if c.PprofAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(c.PprofAddr)
	if err != nil {
		return fmt.Errorf("debug.pprof_addr %q: want host:port: %w", c.PprofAddr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("debug.pprof_addr %q: must be a loopback address (127.0.0.1, [::1] or localhost); profiles are not for the network", c.PprofAddr)
	}
	return nil
}

// addPprof adds the "pprof" listener when debug.pprof_addr is set (tests
// hand in a pre-bound listener of that name for it).
func addPprof(rt *service.Runtime, c DebugConfig) error {
	if c.PprofAddr == "" {
		return nil
	}
	pre, preBound := rt.Listener("pprof")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and every named profile: /debug/pprof/allocs, heap, goroutine...
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	srv, err := httpserver.New(httpserver.Options{Addr: c.PprofAddr, Plain: true, Logger: rt.Logger}, mux)
	if err != nil {
		return fmt.Errorf("debug.pprof_addr: %w", err)
	}
	var ln net.Listener
	rt.Add("pprof", func(ctx context.Context) (string, error) {
		if preBound {
			ln = pre
		} else {
			l, err := srv.Listen(ctx)
			if err != nil {
				return "", err
			}
			ln = l
		}
		return ln.Addr().String(), nil
	}, func(ctx context.Context) error {
		if ln == nil {
			return errors.New("pprof: not bound")
		}
		return srv.Serve(ctx, ln)
	}, func() {
		if ln != nil {
			_ = ln.Close()
		}
	})
	return nil
}
