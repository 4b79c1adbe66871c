package proxyproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultHeaderTimeout bounds how long a trusted peer may take to send
// its PROXY header (or the first bytes of a connection without one).
const DefaultHeaderTimeout = 5 * time.Second

// Listener accepts connections and, for those from a trusted peer (the
// proxy in front of the service, such as mc-proxy), reads a PROXY v1 or v2
// header so that RemoteAddr is the original client. A trusted peer may
// also connect directly without a header (its own health checks); a peer
// that is not trusted never has a header read, so no client can forge its
// address. The header is read in the connection's own goroutine, on its
// first Read or RemoteAddr, never in Accept: a slow peer holds up only
// itself.
type Listener struct {
	net.Listener
	// Trusted are the peers whose PROXY headers are believed.
	Trusted []netip.Prefix
	// HeaderTimeout bounds reading the header (default
	// DefaultHeaderTimeout).
	HeaderTimeout time.Duration
}

// ParseTrusted parses CIDR prefixes or single addresses ("127.0.0.1",
// "10.0.0.0/8", "::1").
func ParseTrusted(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.trusted(c.RemoteAddr()) {
		return c, nil
	}
	timeout := l.HeaderTimeout
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	return &Conn{Conn: c, timeout: timeout}, nil
}

func (l *Listener) trusted(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Conn is a connection from a trusted peer; its RemoteAddr is the client
// its PROXY header names.
type Conn struct {
	net.Conn
	timeout time.Duration

	once   sync.Once
	err    error
	header Header
	// pending holds bytes read while looking for a header that turned out
	// to be the start of the connection's data.
	pending []byte
}

// Header is the PROXY header the peer sent, and whether it sent one.
func (c *Conn) Header() (Header, bool) {
	c.init()
	return c.header, c.err == nil && c.header.Version != 0
}

func (c *Conn) init() {
	c.once.Do(func() {
		if err := c.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
			c.err = err
			return
		}
		defer func() {
			if err := c.SetReadDeadline(time.Time{}); err != nil && c.err == nil {
				c.err = err
			}
		}()
		// Both signatures differ from the first bytes of TLS (0x16 0x03)
		// and of HTTP/2's preface, so six bytes decide.
		pre := make([]byte, 6)
		n, err := io.ReadFull(c.Conn, pre)
		if err != nil {
			if n > 0 && errors.Is(err, io.ErrUnexpectedEOF) {
				c.pending = pre[:n] // a short connection without a header
				return
			}
			c.err = fmt.Errorf("proxyproto: %w", err)
			return
		}
		if string(pre) != "PROXY " && !bytes.Equal(pre, v2Sig[:6]) {
			c.pending = pre
			return
		}
		h, err := Read(io.MultiReader(bytes.NewReader(pre), c.Conn))
		if err != nil {
			c.err = err
			return
		}
		c.header = h
	})
}

// Read reads the connection's data, after the PROXY header.
func (c *Conn) Read(b []byte) (int, error) {
	c.init()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// RemoteAddr is the client the PROXY header names, or the peer itself
// when it sent none (or a LOCAL one).
func (c *Conn) RemoteAddr() net.Addr {
	c.init()
	if c.err != nil || c.header.Version == 0 || c.header.Local {
		return c.Conn.RemoteAddr()
	}
	return net.TCPAddrFromAddrPort(c.header.Source)
}

// LocalAddr is the address the client connected to, per the header.
func (c *Conn) LocalAddr() net.Addr {
	c.init()
	if c.err != nil || c.header.Version == 0 || c.header.Local {
		return c.Conn.LocalAddr()
	}
	return net.TCPAddrFromAddrPort(c.header.Destination)
}
