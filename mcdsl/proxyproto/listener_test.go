package proxyproto

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serveOne accepts one connection on l and reports its RemoteAddr and the
// data read after any header.
func serveOne(t *testing.T, l *Listener) <-chan [2]string {
	t.Helper()
	out := make(chan [2]string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			out <- [2]string{"", err.Error()}
			return
		}
		defer c.Close()
		addr := c.RemoteAddr().String()
		b, err := io.ReadAll(c)
		if err != nil {
			out <- [2]string{addr, "error: " + err.Error()}
			return
		}
		out <- [2]string{addr, string(b)}
	}()
	return out
}

func listen(t *testing.T, trusted ...string) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	p, err := ParseTrusted(trusted)
	if err != nil {
		t.Fatal(err)
	}
	return &Listener{Listener: ln, Trusted: p, HeaderTimeout: 300 * time.Millisecond}
}

func send(t *testing.T, addr string, data []byte, hold time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold)
	_ = c.Close()
}

func TestListener(t *testing.T) {
	v2 := AppendV2(nil, netip.MustParseAddrPort("198.51.100.7:4242"), netip.MustParseAddrPort("127.0.0.1:443"))
	for _, tc := range []struct {
		name     string
		trusted  []string
		data     string
		wantAddr string // prefix
		wantData string
	}{
		{"v1 from a trusted peer", []string{"127.0.0.1"}, "PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\nhello", "203.0.113.9:5555", "hello"},
		{"v2 from a trusted peer", []string{"127.0.0.0/8"}, string(v2) + "hello", "198.51.100.7:4242", "hello"},
		{"no header from a trusted peer", []string{"127.0.0.1"}, "\x16\x03\x01hello", "127.0.0.1:", "\x16\x03\x01hello"},
		{"short data from a trusted peer", []string{"127.0.0.1"}, "hi", "127.0.0.1:", "hi"},
		{"v2 LOCAL", []string{"127.0.0.1"}, string(AppendV2Local(nil)) + "hello", "127.0.0.1:", "hello"},
		{"forged header from an untrusted peer", []string{"10.0.0.0/8"}, "PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\nhello", "127.0.0.1:", "PROXY TCP4 203.0.113.9 127.0.0.1 5555 443\r\nhello"},
		{"malformed header", []string{"127.0.0.1"}, "PROXY TCP4 nonsense\r\nhello", "127.0.0.1:", "error: proxyproto: invalid header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listen(t, tc.trusted...)
			res := serveOne(t, l)
			send(t, l.Addr().String(), []byte(tc.data), 0)
			got := <-res
			if !strings.HasPrefix(got[0], tc.wantAddr) || !strings.HasPrefix(got[1], tc.wantData) {
				t.Errorf("got addr %q data %q, want %q %q", got[0], got[1], tc.wantAddr, tc.wantData)
			}
		})
	}
}

// TestSlowHeader: a trusted peer that sends nothing is cut off after the
// header timeout instead of holding the connection.
func TestSlowHeader(t *testing.T) {
	l := listen(t, "127.0.0.1")
	res := serveOne(t, l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PRO")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-res:
		if !strings.Contains(got[1], "timeout") {
			t.Errorf("slow header: %q", got[1])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a silent trusted peer held the connection past the header timeout")
	}
}

func TestParseTrusted(t *testing.T) {
	p, err := ParseTrusted([]string{"127.0.0.1", "10.1.2.3/8", "::1"})
	if err != nil || len(p) != 3 || p[1].String() != "10.0.0.0/8" || p[2].String() != "::1/128" {
		t.Fatalf("%v %v", p, err)
	}
	if _, err := ParseTrusted([]string{"localhost"}); err == nil {
		t.Error("a host name was accepted")
	}
}
