package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Linux read loop moves datagrams in batches with recvmmsg(2) and
// sendmmsg(2): one system call per batch each way instead of one per
// datagram, which is most of what answering from the cache costs. x/sys
// has no wrappers for them, so the calls and their message headers are
// written out here; the headers point into buffers allocated once per
// loop and reused for every batch, so a datagram answered from the cache
// allocates nothing. They are made as raw system calls, which the runtime
// does not watch: they never block (MSG_DONTWAIT; waiting for a datagram
// is the runtime poller's job), but a batch may keep the kernel busy long
// enough that sysmon would hand the loop's P to another thread, and the
// loop would have to win it back. Measured pinned to one core, that cost
// five times the context switches knot has and about 10% of the queries/s.

const (
	// batchLen is the most datagrams one recvmmsg takes. It never waits
	// to fill a batch: it takes what is queued.
	batchLen = 32
	// oobLen holds the control messages of one datagram: at most an
	// IP_PKTINFO and an IPV6_PKTINFO (CMSG_SPACE 32 and 40).
	oobLen = 128
)

// oobBuf is a control message buffer, 8-byte aligned as cmsghdr needs.
type oobBuf [oobLen / 8]uint64

func (o *oobBuf) bytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(o)), oobLen) //nolint:gosec // G103: a cmsg buffer must be aligned for cmsghdr
}

// batch is one read loop's buffers and message headers.
type batch struct {
	// pktinfo: the socket is bound to a wildcard address, so each reply
	// names the address its query came to as its source.
	pktinfo bool
	in      [batchLen]unix.Mmsghdr
	inIov   [batchLen]unix.Iovec
	names   [batchLen]unix.RawSockaddrInet6 // big enough for either family
	inOOB   [batchLen]oobBuf
	bufs    [batchLen][readBufferSize]byte
	out     [batchLen]unix.Mmsghdr
	outIov  [batchLen]unix.Iovec
	outOOB  [batchLen]oobBuf
	replies [batchLen][maxUDPSize]byte
	// recvCall is the recvmmsg callback for RawConn.Read, made once with
	// its results in got and recvErr, so a batch allocates nothing.
	recvCall func(fd uintptr) bool
	got      int
	recvErr  error
	tx       *sender // sends the replies
}

func newBatch(pktinfo bool) *batch {
	b := &batch{pktinfo: pktinfo, tx: newSender()}
	b.recvCall = b.recvmmsg
	for i := range b.in {
		b.inIov[i].Base = &b.bufs[i][0]
		b.inIov[i].SetLen(readBufferSize)
		h := &b.in[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i])) //nolint:gosec // G103: recvmmsg fills the sockaddr in place
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
		if pktinfo {
			h.Control = &b.inOOB[i].bytes()[0]
		}
	}
	return b
}

// socketOptions prepares conn for the read loops: a socket bound to a
// wildcard address asks for each datagram's destination address
// (IP_PKTINFO, IPV6_RECVPKTINFO), so that a reply leaves from the address
// the client sent to, as miekg/dns's server did. Either family's option
// may fail on the other family's socket; only both failing is an error.
func socketOptions(conn *net.UDPConn) (pktinfo bool, err error) {
	la, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok || !la.IP.IsUnspecified() {
		return false, nil
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("dns udp socket: %w", err)
	}
	var err4, err6 error
	if cerr := rc.Control(func(fd uintptr) {
		err4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		err6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	}); cerr != nil {
		return false, fmt.Errorf("dns udp socket: %w", cerr)
	}
	if err4 != nil && err6 != nil {
		return false, fmt.Errorf("dns udp socket: ask for destination addresses: %w", err4)
	}
	return true, nil
}

// udpListenConfig binds UDP sockets, with SO_REUSEPORT if reuse, so that
// serveUDP can open one socket per core on the same address.
func udpListenConfig(reuse bool) *net.ListenConfig {
	lc := &net.ListenConfig{}
	if reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return lc
}

// siblings opens n more sockets bound to conn's address if conn has
// SO_REUSEPORT set, each prepared as socketOptions prepares conn; none if
// it has not.
func siblings(ctx context.Context, conn *net.UDPConn, n int) ([]*net.UDPConn, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dns udp socket: %w", err)
	}
	reuse, serr := 0, error(nil)
	if err := rc.Control(func(fd uintptr) {
		reuse, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT)
	}); err != nil {
		return nil, fmt.Errorf("dns udp socket: %w", err)
	}
	if serr != nil || reuse == 0 || n < 1 {
		return nil, nil
	}
	var out []*net.UDPConn
	for range n {
		pc, err := udpListenConfig(true).ListenPacket(ctx, "udp", conn.LocalAddr().String())
		if err == nil {
			uc, ok := pc.(*net.UDPConn)
			if !ok {
				err = fmt.Errorf("a %T, not a *net.UDPConn", pc)
			} else if _, err = socketOptions(uc); err == nil {
				out = append(out, uc)
				continue
			}
			_ = pc.Close()
		}
		for _, c := range out {
			_ = c.Close()
		}
		return nil, fmt.Errorf("dns udp socket beside %s: %w", conn.LocalAddr(), err)
	}
	return out, nil
}

// readLoop answers the datagrams arriving on conn, a batch at a time,
// until conn fails or ctx ends (serveUDP then expires conn's read
// deadline, which ends the wait for the next batch).
func (s *Server) readLoop(ctx context.Context, conn *net.UDPConn, pktinfo bool, fw *forwards) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("dns udp socket: %w", err)
	}
	b := newBatch(pktinfo)
	for {
		n, err := b.recv(rc)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns udp read: %w", err)
		}
		k := 0
		for i := range n {
			raw := b.bufs[i][:b.in[i].Len]
			src := b.source(i)
			reply, forward := s.packet(ctx, raw, src, b.replies[i][:0])
			if forward {
				raw, p := bytes.Clone(raw), b.peer(i)
				fw.start(func() {
					if reply := s.forwardPacket(ctx, raw, src); reply != nil {
						if err := p.send(rc, reply); err != nil {
							s.logger.Debug("dns: udp write", "err", err)
						}
					}
				})
				continue
			}
			if reply != nil {
				b.queue(k, i, reply)
				k++
			}
		}
		if err := b.send(rc, k); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dns udp write: %w", err)
		}
	}
}

// recv reads at most batchLen datagrams, waiting (in the runtime's poller)
// only while there are none.
func (b *batch) recv(rc syscall.RawConn) (int, error) {
	for i := range b.in {
		h := &b.in[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
		if b.pktinfo {
			h.SetControllen(oobLen)
		}
	}
	b.got, b.recvErr = 0, nil
	if err := rc.Read(b.recvCall); err != nil {
		return 0, err
	}
	return b.got, b.recvErr
}

// recvmmsg is recv's callback: false waits for the socket to be readable.
func (b *batch) recvmmsg(fd uintptr) bool {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), batchLen, unix.MSG_DONTWAIT, 0, 0) //nolint:gosec // G103: recvmmsg(2), see the file comment
		switch {
		case errno == 0:
			b.got = int(r) //nolint:gosec // at most batchLen
			return true
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return false
		case errno.Temporary():
			// As miekg/dns's loop: try again (ENFILE, ECONNRESET...).
			return true
		default:
			b.recvErr = errno
			return true
		}
	}
}

// source is the client address of datagram i.
func (b *batch) source(i int) netip.Addr {
	sa := &b.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa)) //nolint:gosec // G103: the kernel wrote a sockaddr_in here
		return netip.AddrFrom4(sa4.Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16(sa.Addr)
	}
	return netip.Addr{}
}

// queue makes reply, the answer to datagram i, the k-th of the batch to
// send: to the address it came from, and from the address it came to.
func (b *batch) queue(k, i int, reply []byte) {
	b.outIov[k].Base = &reply[0]
	b.outIov[k].SetLen(len(reply))
	h := &b.out[k].Hdr
	h.Name, h.Namelen = b.in[i].Hdr.Name, b.in[i].Hdr.Namelen
	h.Iov = &b.outIov[k]
	h.SetIovlen(1)
	h.Control = nil
	h.SetControllen(0)
	if b.pktinfo {
		oob := b.outOOB[k].bytes()
		if n := replyPktinfo(b.inOOB[i].bytes()[:b.in[i].Hdr.Controllen], oob); n > 0 {
			h.Control = &oob[0]
			h.SetControllen(n)
		}
	}
}

// send sends the first k queued replies. A reply the kernel refuses (a
// route or a firewall rule, say) is skipped, not retried.
func (b *batch) send(rc syscall.RawConn, k int) error {
	return b.tx.send(rc, b.out[:k])
}

// sender sends messages with sendmmsg(2). Its RawConn.Write callback is
// made once, so sending allocates nothing.
type sender struct {
	msgs []unix.Mmsghdr
	sent int
	call func(fd uintptr) bool
}

func newSender() *sender {
	s := &sender{}
	s.call = s.sendmmsg
	return s
}

// send sends msgs, waiting while the socket's buffer is full.
func (s *sender) send(rc syscall.RawConn, msgs []unix.Mmsghdr) error {
	s.msgs, s.sent = msgs, 0
	defer func() { s.msgs = nil }()
	for s.sent < len(s.msgs) {
		if err := rc.Write(s.call); err != nil {
			return err
		}
	}
	return nil
}

// sendmmsg is send's callback: false waits for the socket to be writable.
func (s *sender) sendmmsg(fd uintptr) bool {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[s.sent])), uintptr(len(s.msgs)-s.sent), unix.MSG_DONTWAIT, 0, 0) //nolint:gosec // G103: sendmmsg(2), see the file comment
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			return false
		case errno != 0 || r == 0:
			// The first message failed: drop it (UDP promises nothing)
			// and go on with the rest.
			s.sent++
		default:
			s.sent += int(r) //nolint:gosec // at most len(s.msgs)
		}
		return true
	}
}

// peer is where the reply to a handed-over datagram goes.
type peer struct {
	name    unix.RawSockaddrInet6
	namelen uint32
	oob     oobBuf
	ooblen  int
}

// peer copies what queue would use for datagram i.
func (b *batch) peer(i int) *peer {
	p := &peer{name: b.names[i], namelen: b.in[i].Hdr.Namelen}
	if b.pktinfo {
		p.ooblen = replyPktinfo(b.inOOB[i].bytes()[:b.in[i].Hdr.Controllen], p.oob.bytes())
	}
	return p
}

// send sends reply to p.
func (p *peer) send(rc syscall.RawConn, reply []byte) error {
	iov := unix.Iovec{Base: &reply[0]}
	iov.SetLen(len(reply))
	msg := []unix.Mmsghdr{{Hdr: unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&p.name)), //nolint:gosec // G103: a sockaddr for sendmmsg
		Namelen: p.namelen,
		Iov:     &iov,
	}}}
	msg[0].Hdr.SetIovlen(1)
	if p.ooblen > 0 {
		msg[0].Hdr.Control = &p.oob.bytes()[0]
		msg[0].Hdr.SetControllen(p.ooblen)
	}
	return newSender().send(rc, msg)
}

// replyPktinfo writes into out the control message that sends a reply
// from the address the query (whose control messages are in in) came to,
// and returns its length, or 0 if in names no address. As miekg/dns did,
// the IPv6 message is preferred, and an IPv4 address (also one mapped
// into IPv6) is given as IP_PKTINFO.
func replyPktinfo(in, out []byte) int {
	var dst4, dst6 netip.Addr
	for off := 0; off+unix.CmsgLen(0) <= len(in); {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&in[off])) //nolint:gosec // G103: reading cmsghdrs the kernel wrote, aligned
		l := int(h.Len)                                //nolint:gosec // bounded just below
		if l < unix.CmsgLen(0) || off+l > len(in) {
			break
		}
		data := in[off+unix.CmsgLen(0) : off+l]
		switch {
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			dst6 = netip.AddrFrom16([16]byte(data[:16]))
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			dst4 = netip.AddrFrom4([4]byte(data[8:12])) // ipi_addr, the header's destination
		}
		off += unix.CmsgSpace(l - unix.CmsgLen(0))
	}
	dst := dst6
	if !dst.IsValid() {
		dst = dst4
	}
	if !dst.IsValid() {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&out[0])) //nolint:gosec // G103: writing a cmsghdr into an aligned buffer
	data := out[unix.CmsgLen(0):]
	clear(out)
	if dst.Unmap().Is4() {
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		a := dst.Unmap().As4()
		copy(data[4:8], a[:]) // ipi_spec_dst: the source to use
		return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	a := dst.As16()
	copy(data[:16], a[:]) // ipi6_addr: the source to use
	return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
}
