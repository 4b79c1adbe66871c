package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"git.metacircular.net/metacircular/mcdsl/testtool"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

type proxyEnv struct {
	srv   *Server
	reg   *prometheus.Registry
	addrs map[string]string
	stop  func() error
}

// scrape is the server's metrics page, as Prometheus reads it.
func (e *proxyEnv) scrape(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

// hasSample reports whether scrape holds the sample line want, e.g.
// `mcproxy_connections_total{listener="https"} 2`, whatever the order of
// its labels: label order carries no meaning in the exposition format,
// and client_golang writes labels sorted by name where the hand-written
// exposition it replaced wrote them in declaration order (both put a
// bucket's le last). Label values must not contain commas.
func hasSample(scrape, want string) bool {
	return strings.Contains(scrape, sortedLabels(want))
}

func sortedLabels(sample string) string {
	open, end := strings.IndexByte(sample, '{'), strings.IndexByte(sample, '}')
	if open < 0 || end < open {
		return sample
	}
	labels := strings.Split(sample[open+1:end], ",")
	slices.SortStableFunc(labels, func(a, b string) int {
		if isLE, bLE := strings.HasPrefix(a, "le="), strings.HasPrefix(b, "le="); isLE != bLE {
			if isLE {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return sample[:open+1] + strings.Join(labels, ",") + sample[end:]
}

// startProxy runs a proxy on kernel-chosen loopback ports, one per listener.
func startProxy(t testing.TB, opts Options, routes ...route.Route) *proxyEnv {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	table, err := route.NewTable(routes)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts.Metrics = reg
	srv, err := New(opts, table)
	if err != nil {
		t.Fatal(err)
	}
	lns := map[string]net.Listener{}
	addrs := map[string]string{}
	for _, l := range opts.Listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[l.Name] = ln
		addrs[l.Name] = ln.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lns) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(opts.ShutdownTimeout + 10*time.Second):
			return errors.New("Serve did not return")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return &proxyEnv{srv: srv, reg: reg, addrs: addrs, stop: stop}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func listener(name string) Listener { return Listener{Name: name} }

// echoBackend answers with what the proxy forwarded.
func echoBackend(t *testing.T, tag string) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s proto=%s host=%s xff=%s xrealip=%s xproto=%s path=%s",
			tag, r.Proto, r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Real-IP"),
			r.Header.Get("X-Forwarded-Proto"), r.URL.Path)
	})
	return serveHTTP(t, h)
}

// serveHTTP serves h over plain HTTP/1.1 and h2c on a loopback port.
func serveHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: h, Protocols: p, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // closed by cleanup
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

func curl(t *testing.T, pki *tlstest.PKI, host, addr string, args ...string) (string, error) {
	t.Helper()
	bin := testtool.Require(t, "curl")
	_, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-sS", "--max-time", "10", "--resolve", host + ":" + port + ":127.0.0.1", "--cacert", pki.CAFile}, args...)
	full = append(full, "https://"+host+":"+port+"/hello")
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	return string(out), err
}

// expectReset dials addr, optionally sends first, and requires the
// connection to end with ECONNRESET and no data.
func expectReset(t *testing.T, addr string, first []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return // reset before connect returned
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(first) > 0 {
		// The reset may already have arrived: then the write reports it,
		// and the socket error, reported once, is gone for the read.
		if _, err := c.Write(first); errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return
		}
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1024))
	if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %d bytes, err %v; want a reset", n, err)
	}
}

// clientHello returns a real crypto/tls ClientHello for serverName.
func clientHello(t *testing.T, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tls.Client(c, &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS13}).Handshake() //nolint:errcheck // never completes
		c.Close()
	}()
	var buf bytes.Buffer
	hdr := make([]byte, 5)
	io.ReadFull(s, hdr) //nolint:errcheck // checked by length below
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	io.ReadFull(s, body) //nolint:errcheck // checked by length below
	buf.Write(hdr)
	buf.Write(body)
	if buf.Len() < 50 {
		t.Fatal("no client hello")
	}
	return buf.Bytes()
}

// httpClient dials addr for every request, sending prefix first (a PROXY
// header), and trusts pki.
func httpClient(pki *tlstest.PKI, addr string, prefix []byte, h2 bool) *http.Client {
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if len(prefix) > 0 {
			if _, err := c.Write(prefix); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
	tr := &http.Transport{DialContext: dial, TLSClientConfig: pki.ClientConfig(), ForceAttemptHTTP2: h2}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

type netipPrefix = netip.Prefix

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func tlsDial(addr string, cfg *tls.Config) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
}

// wsEchoBackend is a websocket-like backend: it switches protocols on an
// Upgrade: websocket request and then answers each line with "ws " and
// the line.
func wsEchoBackend(t testing.TB) string {
	t.Helper()
	return serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString("ws " + line)
			_ = brw.Flush()
		}
	}))
}
