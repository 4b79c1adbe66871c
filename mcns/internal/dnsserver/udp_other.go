//go:build !linux

package dnsserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
)

// socketOptions has nothing to set where there is no batched read loop:
// replies leave from whatever address the system picks, so bind a
// specific address on a multi-homed host.
func socketOptions(*net.UDPConn) (bool, error) { return false, nil }

// udpListenConfig binds UDP sockets; elsewhere than Linux the read loops
// share one socket.
func udpListenConfig(bool) *net.ListenConfig { return &net.ListenConfig{} }

// siblings opens no more sockets: the read loops share conn.
func siblings(context.Context, *net.UDPConn, int) ([]*net.UDPConn, error) { return nil, nil }

// readLoop answers the datagrams arriving on conn one at a time until conn
// fails or ctx ends (serveUDP then expires conn's read deadline). Linux
// has a batched loop (udp_linux.go); this one serves other systems.
func (s *Server) readLoop(ctx context.Context, conn *net.UDPConn, _ bool, fw *forwards) error {
	buf := make([]byte, readBufferSize)
	out := make([]byte, maxUDPSize)
	for {
		n, _, _, from, err := conn.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				continue
			}
			return fmt.Errorf("dns udp read: %w", err)
		}
		reply, forward := s.packet(ctx, buf[:n], from.Addr(), out[:0])
		if forward {
			raw := bytes.Clone(buf[:n])
			fw.start(func() {
				if reply := s.forwardPacket(ctx, raw, from.Addr()); reply != nil {
					if _, err := conn.WriteToUDPAddrPort(reply, from); err != nil {
						s.logger.Debug("dns: udp write", "err", err)
					}
				}
			})
			continue
		}
		if reply != nil {
			if _, err := conn.WriteToUDPAddrPort(reply, from); err != nil {
				s.logger.Debug("dns: udp write", "err", err)
			}
		}
	}
}
