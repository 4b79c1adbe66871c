package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
	"git.metacircular.net/metacircular/mcproxy/internal/route"
)

// BenchmarkL7 measures the L7 forwarding path in one process: TLS
// clients (HTTP/1.1 or HTTP/2, 16 at a time) through the proxy to a
// plain backend answering 1 KiB, in each backend protocol. ns/op and
// allocs/op include the client's and the backend's work, which is the
// same for every variant of the proxy; bench/mcproxy measures the proxy
// alone against its peers.
func BenchmarkL7(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	backend := serveHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "1024")
		_, _ = w.Write(body)
	}))
	pki := tlstest.New(b)
	rt := l7Route(b, pki, "bench.test", backend)
	for _, tc := range []struct {
		name     string
		clientH2 bool
		protocol string
	}{
		{"client=h1/backend=http1", false, route.HTTP1},
		{"client=h2/backend=http1", true, route.HTTP1},
		{"client=h2/backend=h2c", true, route.H2C},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rt := rt
			rt.BackendProtocol = tc.protocol
			env := startProxy(b, Options{Listeners: []Listener{listener("https")}, Logger: slog.New(slog.DiscardHandler)}, rt)
			addr := env.addrs["https"]
			cfg := pki.ClientConfig()
			cfg.ServerName = "bench.test"
			protos := new(http.Protocols)
			protos.SetHTTP1(!tc.clientH2)
			protos.SetHTTP2(tc.clientH2)
			tr := &http.Transport{
				DialContext:         (&net.Dialer{}).DialContext,
				TLSClientConfig:     cfg,
				Protocols:           protos,
				MaxIdleConnsPerHost: 64,
				DisableCompression:  true,
			}
			b.Cleanup(tr.CloseIdleConnections)
			url := "https://" + addr + "/"
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Host = "bench.test"
					resp, err := tr.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close() //nolint:errcheck,gosec // read to the end
					if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
						b.Errorf("status %d, %d bytes", resp.StatusCode, n)
						return
					}
				}
			})
		})
	}
}
