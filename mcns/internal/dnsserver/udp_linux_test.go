package dnsserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// udpSockets counts the IPv4 UDP sockets bound to port, from
// /proc/net/udp.
func udpSockets(t *testing.T, port int) int {
	t.Helper()
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasSuffix(fields[1], fmt.Sprintf(":%04X", port)) {
			n++
		}
	}
	return n
}

// TestListenAndServeOneSocketPerCore checks that on several cores Listen
// binds a socket that allows SO_REUSEPORT siblings, that Serve runs one
// socket per core, and that every socket answers: queries from many
// source ports, which the kernel spreads over the sockets, all get their
// reply. After Serve returns, every socket is closed.
func TestListenAndServeOneSocketPerCore(t *testing.T) {
	const cores = 4
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(cores))
	st := openStore(t)
	seed(t, st)
	s := newServer(t, st, Config{ListenAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	udp, tcp, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uc, ok := udp.(*net.UDPConn)
	if !ok {
		t.Fatalf("Listen bound a %T", udp)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	reuse := 0
	if err := rc.Control(func(fd uintptr) { reuse, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT) }); err != nil || reuse == 0 {
		t.Fatalf("SO_REUSEPORT %d %v on the socket Listen bound", reuse, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, udp, tcp) }()
	port := int(netip.MustParseAddrPort(uc.LocalAddr().String()).Port())
	deadline := time.Now().Add(5 * time.Second)
	for udpSockets(t, port) != cores && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := udpSockets(t, port); n != cores {
		t.Fatalf("%d UDP sockets on port %d, want %d", n, port, cores)
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	for i := range 64 {
		in, _, err := c.Exchange(query("www.example.test.", dns.TypeA), udp.LocalAddr().String())
		if err != nil || len(in.Answer) != 2 {
			t.Fatalf("query %d: %v %v", i, in, err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := udpSockets(t, port); n != 0 {
		t.Errorf("%d UDP sockets left open on port %d", n, port)
	}
}
