// Package dnstest holds helpers for tests that serve DNS on loopback.
package dnstest

import (
	"net"
	"testing"
)

// ListenPair binds UDP and TCP on the same kernel-chosen loopback port, as
// a client retrying over TCP expects. The UDP port's TCP twin can be taken
// by another socket, so it retries with a fresh port.
func ListenPair(t testing.TB) (net.PacketConn, net.Listener, string) {
	t.Helper()
	var lastErr error
	for range 20 {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := udp.LocalAddr().String()
		tcp, err := net.Listen("tcp", addr)
		if err == nil {
			return udp, tcp, addr
		}
		lastErr = err
		_ = udp.Close()
	}
	t.Fatalf("no port free for both UDP and TCP: %v", lastErr)
	return nil, nil, ""
}
