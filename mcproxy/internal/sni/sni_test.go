package sni

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// clientHello records the first flight of a real crypto/tls client.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tc := tls.Client(c, &tls.Config{ServerName: serverName, NextProtos: []string{"h2", "http/1.1"}, InsecureSkipVerify: true}) //nolint:gosec // never completes; only the hello is used
		_ = tc.Handshake()
		_ = c.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// splitRecords re-frames a single-record hello into records of at most n
// handshake bytes each.
func splitRecords(hello []byte, n int) []byte {
	body := hello[5:]
	var out []byte
	for len(body) > 0 {
		k := min(n, len(body))
		out = append(out, 0x16, hello[1], hello[2], byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return out
}

// slowReader returns at most n bytes per Read, like small TCP segments.
type slowReader struct {
	b []byte
	n int
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

func TestPeek(t *testing.T) {
	hello := clientHello(t, "Example.COM")
	cases := []struct {
		name string
		r    io.Reader
		want []byte
	}{
		{"one read", bytes.NewReader(hello), hello},
		{"segments of 7 bytes", &slowReader{b: hello, n: 7}, hello},
		{"records of 50 bytes", &slowReader{b: splitRecords(hello, 50), n: 13}, splitRecords(hello, 50)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := PeekReader(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if h.ServerName != "example.com" {
				t.Fatalf("server name %q", h.ServerName)
			}
			if !bytes.Equal(h.Raw, tc.want) {
				t.Fatalf("recorded %d bytes, want the %d sent", len(h.Raw), len(tc.want))
			}
			if len(h.ALPN) != 2 || h.ALPN[0] != "h2" {
				t.Fatalf("alpn %v", h.ALPN)
			}
		})
	}
}

func TestPeekRejects(t *testing.T) {
	hello := clientHello(t, "example.com")
	huge := append([]byte{0x16, 0x03, 0x01, 0x40, 0x00}, bytes.Repeat([]byte{1}, 0x4000)...)
	cases := []struct {
		name string
		in   []byte
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"truncated", hello[:len(hello)/2]},
		{"empty", nil},
		{"huge record", huge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := PeekReader(bytes.NewReader(tc.in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestPeekTooLarge(t *testing.T) {
	// A handshake message claiming 20000 bytes, delivered in full records.
	msg := append([]byte{0x01, 0x00, 0x4e, 0x20}, bytes.Repeat([]byte{0}, 20000)...)
	in := splitRecords(append([]byte{0x16, 0x03, 0x01, 0, 0}, msg...), 4000)
	_, err := PeekReader(bytes.NewReader(in))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestPeekTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := c.Write(clientHello(t, "a.test")[:20]); err != nil {
		t.Fatal(err)
	}
	_, err = Peek(context.Background(), s, 100*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func FuzzPeek(f *testing.F) {
	hello := clientHello(f, "fuzz.example")
	f.Add(hello)
	f.Add(splitRecords(hello, 1))
	f.Add(splitRecords(hello, 100))
	f.Add(hello[:40])
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := PeekReader(&slowReader{b: in, n: 97})
		if err != nil {
			return
		}
		if len(h.Raw) > MaxHelloSize || !bytes.HasPrefix(in, h.Raw) {
			t.Fatalf("recorded %d bytes that are not a prefix of the input", len(h.Raw))
		}
	})
}
