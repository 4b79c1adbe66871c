// Package sni reads a TLS ClientHello off a connection without consuming it:
// the bytes are recorded so the proxy can replay them to a backend (L4) or
// to its own TLS server (L7). Parsing is done by crypto/tls itself over a
// read-only connection, so the proxy accepts exactly what Go's TLS stack
// accepts and no hand-written parser reads untrusted bytes.
package sni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"crypto/tls"
)

// MaxHelloSize caps the bytes read while looking for a ClientHello.
const MaxHelloSize = 16 << 10

// ErrTooLarge is returned when no complete ClientHello arrived within
// MaxHelloSize bytes.
var ErrTooLarge = errors.New("sni: client hello larger than 16 KiB")

// errCaptured aborts the handshake once the ClientHello has been seen.
var errCaptured = errors.New("sni: client hello captured")

// Hello is a peeked ClientHello.
type Hello struct {
	// ServerName is the SNI name, lower case; empty when the client sent none.
	ServerName string
	// ALPN lists the protocols the client offered.
	ALPN []string
	// Raw holds every byte read from the connection, to be replayed first.
	Raw []byte
}

// Peek reads a ClientHello from conn, waiting at most timeout for it. The
// connection's read deadline is cleared afterwards; nothing is written.
func Peek(ctx context.Context, conn net.Conn, timeout time.Duration) (Hello, error) {
	if timeout > 0 {
		if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return Hello{}, fmt.Errorf("sni: set deadline: %w", err)
		}
		defer conn.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort; a failing conn fails the next read
	}
	return peek(ctx, conn, conn)
}

// PeekReader is Peek over a plain reader (for tests and fuzzing).
func PeekReader(r io.Reader) (Hello, error) {
	return peek(context.Background(), r, nil)
}

func peek(ctx context.Context, r io.Reader, under net.Conn) (Hello, error) {
	rc := &recordingConn{r: r, under: under}
	var info *tls.ClientHelloInfo
	cfg := &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			info = chi
			return nil, errCaptured
		},
	}
	err := tls.Server(rc, cfg).HandshakeContext(ctx)
	if info == nil {
		if rc.tooLarge {
			return Hello{}, ErrTooLarge
		}
		if rc.readErr != nil {
			return Hello{}, fmt.Errorf("sni: read client hello: %w", rc.readErr)
		}
		return Hello{}, fmt.Errorf("sni: parse client hello: %w", err)
	}
	return Hello{
		ServerName: strings.ToLower(info.ServerName),
		ALPN:       append([]string(nil), info.SupportedProtos...),
		Raw:        rc.buf,
	}, nil
}

// recordingConn is the read-only net.Conn crypto/tls parses from: reads are
// recorded and capped, writes (the alert sent on abort) are discarded, and
// Close never closes the real connection.
type recordingConn struct {
	r        io.Reader
	under    net.Conn
	buf      []byte
	tooLarge bool
	readErr  error
}

func (c *recordingConn) Read(p []byte) (int, error) {
	room := MaxHelloSize - len(c.buf)
	if room <= 0 {
		c.tooLarge = true
		return 0, ErrTooLarge
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	if err != nil && c.readErr == nil {
		c.readErr = err
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) { return len(p), nil }

// Close interrupts a pending read (HandshakeContext calls it when its
// context ends) without closing the client's connection.
func (c *recordingConn) Close() error {
	if c.under != nil {
		return c.under.SetReadDeadline(time.Unix(1, 0))
	}
	return nil
}

func (c *recordingConn) LocalAddr() net.Addr {
	if c.under != nil {
		return c.under.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (c *recordingConn) RemoteAddr() net.Addr {
	if c.under != nil {
		return c.under.RemoteAddr()
	}
	return &net.TCPAddr{}
}

func (c *recordingConn) SetDeadline(time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }
