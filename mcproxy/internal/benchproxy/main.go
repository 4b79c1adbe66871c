// Command benchproxy is the mc-proxy side of bench/mcproxy/run.sh (it
// lives here because Go lets only mcproxy/ import mcproxy/internal). It has
// two modes:
//
//	benchproxy backend -http ADDR -tls ADDR -cert F -key F
//	    the benchmark backend: every request gets the same 1 KiB body.
//	    -http speaks HTTP/1.1 and h2c (the L7 proxies' upstream); -tls
//	    speaks HTTP/1.1 and h2 over TLS with the given certificate (the
//	    L4 proxies' upstream). GET /stats reports the requests served and
//	    how many TLS requests came over a resumed session.
//
//	benchproxy proxy -l7 ADDR -l4 ADDR -host NAME -cert F -key F -backend ADDR -tls-backend ADDR
//	        [-backend-protocol P] [-backend-tls -backend-ca F -backend-server-name N] [-pprof ADDR]
//	    mc-proxy's data plane (proxy.New + Serve) with two listeners: "l7"
//	    terminates TLS for NAME and reverse proxies to -backend in the
//	    route's backend protocol, whatever the client speaks (http1, the
//	    default of a route, h2c, or auto: ALPN over -backend-tls); "l4"
//	    relays NAME's raw TLS bytes to -tls-backend. Logs warnings and
//	    errors only. -pprof serves net/http/pprof on a loopback address
//	    for bench/mcproxy's profiles (off unless given).
//
//	benchproxy handshakes -addr ADDR -sni NAME -c N -d DURATION
//	    the new-TLS-handshakes load generator: N workers each loop over
//	    dial, full TLS handshake (no client session cache, so never a
//	    resumption), GET / with Connection: close, read to EOF, close.
//	    Prints "handshakes N errors E per_second R p50_ms A p99_ms B"
//	    (latency of the whole connect-handshake-request-response cycle),
//	    then the first error, if any.
//	    wrk and h2load cannot do this: both resume sessions from tickets
//	    when they reconnect, and openssl s_time sends no SNI.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"git.metacircular.net/metacircular/mcproxy/internal/proxy"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchproxy backend|proxy [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	switch os.Args[1] {
	case "backend":
		err = backend(ctx, os.Args[2:])
	case "proxy":
		err = runProxy(ctx, os.Args[2:])
	case "handshakes":
		err = handshakes(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q (backend or proxy)", os.Args[1])
	}
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchproxy: %v\n", err)
		os.Exit(1)
	}
}

func backend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	httpAddr := fs.String("http", "127.0.0.1:18080", "HTTP/1.1 + h2c address")
	tlsAddr := fs.String("tls", "127.0.0.1:18443", "HTTP/1.1 + h2 over TLS address")
	certFile := fs.String("cert", "", "certificate chain for -tls (required)")
	keyFile := fs.String("key", "", "key for -tls (required)")
	_ = fs.Parse(args)
	if *certFile == "" || *keyFile == "" {
		return errors.New("backend: -cert and -key are required")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	body := []byte(strings.Repeat("0123456789abcdef", 64)) // 1 KiB
	var requests, tlsRequests, resumed atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "requests %d tls_requests %d tls_resumed %d\n", requests.Load(), tlsRequests.Load(), resumed.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.TLS != nil {
			tlsRequests.Add(1)
			if r.TLS.DidResume {
				resumed.Add(1)
			}
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "1024")
		_, _ = w.Write(body)
	})
	plain := new(http.Protocols)
	plain.SetHTTP1(true)
	plain.SetUnencryptedHTTP2(true)
	overTLS := new(http.Protocols)
	overTLS.SetHTTP1(true)
	overTLS.SetHTTP2(true)
	srvPlain := &http.Server{Addr: *httpAddr, Handler: mux, Protocols: plain, ReadHeaderTimeout: 10 * time.Second}
	srvTLS := &http.Server{
		Addr: *tlsAddr, Handler: mux, Protocols: overTLS, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	errc := make(chan error, 2)
	go func() { errc <- srvPlain.ListenAndServe() }()
	go func() { errc <- srvTLS.ListenAndServeTLS("", "") }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return errors.Join(srvPlain.Shutdown(sctx), srvTLS.Shutdown(sctx))
}

func runProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
	l7 := fs.String("l7", "127.0.0.1:19443", "L7 (TLS-terminating) listener")
	l4 := fs.String("l4", "127.0.0.1:19444", "L4 (SNI relay) listener")
	host := fs.String("host", "bench.test", "SNI host name routed on both listeners")
	certFile := fs.String("cert", "", "L7 certificate chain (required)")
	keyFile := fs.String("key", "", "L7 key (required)")
	backendAddr := fs.String("backend", "127.0.0.1:18080", "L7 backend (HTTP/1.1 + h2c)")
	tlsBackend := fs.String("tls-backend", "127.0.0.1:18443", "L4 backend (TLS)")
	backendProtocol := fs.String("backend-protocol", route.HTTP1, "what the L7 route speaks to -backend: http1, h2c or auto")
	backendTLS := fs.Bool("backend-tls", false, "the L7 route re-encrypts to -backend (its TLS port)")
	backendCA := fs.String("backend-ca", "", "CA certificate verifying -backend with -backend-tls")
	backendName := fs.String("backend-server-name", "", "name verified in -backend's certificate with -backend-tls")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (off when empty)")
	_ = fs.Parse(args)
	if *pprofAddr != "" {
		go servePprof(*pprofAddr)
	}
	table, err := route.NewTable([]route.Route{
		{
			Listener: "l7", Hostname: *host, Mode: route.L7, Backend: *backendAddr, TLSCert: *certFile, TLSKey: *keyFile,
			BackendProtocol: *backendProtocol, BackendTLS: *backendTLS, BackendCA: *backendCA, BackendServerName: *backendName,
		},
		{Listener: "l4", Hostname: *host, Mode: route.L4, Backend: *tlsBackend},
	})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := proxy.New(proxy.Options{
		Listeners:       []proxy.Listener{{Name: "l7", Addr: *l7}, {Name: "l4", Addr: *l4}},
		ShutdownTimeout: 2 * time.Second,
		Logger:          log,
	}, table)
	if err != nil {
		return err
	}
	lns := map[string]net.Listener{}
	return srv.Serve(ctx, lns)
}

func handshakes(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("handshakes", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19443", "TLS address")
	sni := fs.String("sni", "bench.test", "server name sent (SNI, Host)")
	workers := fs.Int("c", 16, "concurrent connections")
	dur := fs.Duration("d", 10*time.Second, "duration")
	_ = fs.Parse(args)
	cfg := &tls.Config{
		ServerName: *sni,
		// The certificate chain is not verified (the handshake signature
		// still is): it would only add client CPU.
		InsecureSkipVerify: true, //nolint:gosec // benchmark client
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: nil, // full handshakes only
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + *sni + "\r\nConnection: close\r\n\r\n")
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     atomic.Int64
		firstErr error
		wg       sync.WaitGroup
		dialer   net.Dialer
	)
	start := time.Now()
	for range *workers {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := oneHandshake(ctx, &dialer, *addr, cfg, req); err != nil {
					if ctx.Err() == nil {
						if errs.Add(1) == 1 {
							mu.Lock()
							firstErr = err
							mu.Unlock()
						}
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := min(len(lat)-1, max(0, int(float64(len(lat))*p+0.999999)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	fmt.Printf("handshakes %d errors %d per_second %.1f p50_ms %.3f p99_ms %.3f\n",
		len(lat), errs.Load(), float64(len(lat))/elapsed.Seconds(), pct(0.50), pct(0.99))
	if firstErr != nil {
		fmt.Printf("first error: %v\n", firstErr)
	}
	return nil
}

func oneHandshake(ctx context.Context, d *net.Dialer, addr string, cfg *tls.Config, req []byte) error {
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	c := tls.Client(raw, cfg)
	defer c.Close() //nolint:errcheck // benchmark connection
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close() //nolint:errcheck // benchmark connection
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != 1024 {
		return fmt.Errorf("status %d, %d bytes", resp.StatusCode, n)
	}
	return nil
}

// servePprof serves the runtime profiles (CPU, heap, allocs) for the
// benchmark's profiling runs; it is never on unless -pprof is given.
func servePprof(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "benchproxy: pprof: %v\n", err)
	}
}
