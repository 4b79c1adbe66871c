package proxy

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

// TestCertificateReload: replacing an L7 route's certificate files (as a
// renewal does) changes the certificate served to new connections without
// a restart or a route change.
func TestCertificateReload(t *testing.T) {
	pki := tlstest.New(t)
	backend := echoBackend(t, "app")
	rt := l7Route(t, pki, "app.test", backend)
	env := startProxy(t, Options{Listeners: []Listener{listener("https")}}, rt)
	addr := env.addrs["https"]
	served := func() []byte {
		t.Helper()
		c, err := tlsDial(addr, &tls.Config{RootCAs: pki.Pool, ServerName: "app.test", MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	before := served()

	renewed := pki.Issue(t, "app-renewed", "app.test")
	for _, f := range []struct{ from, to string }{{renewed.CertFile, rt.TLSCert}, {renewed.KeyFile, rt.TLSKey}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.to, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Make the change visible even on filesystems with coarse mtimes.
		future := time.Now().Add(2 * time.Second)
		if err := os.Chtimes(f.to, future, future); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for string(served()) == string(before) {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
