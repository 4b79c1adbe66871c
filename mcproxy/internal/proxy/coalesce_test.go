package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// tcpPair is a connected loopback TCP pair.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestCoalescerKeepsEveryWrite: writes from many goroutines all arrive,
// each whole and each goroutine's in its order, however they were
// batched; more than maxPending in flight makes writers wait, not fail.
func TestCoalescerKeepsEveryWrite(t *testing.T) {
	a, b := tcpPair(t)
	c := newCoalescer(a)
	const writers, writes = 8, 100
	record := func(w, i int) string {
		size := (i * 997) % 2048
		if i%25 == 0 {
			size = maxPending + 1000 // more than a coalescer holds
		}
		return fmt.Sprintf("<%d:%d:%s>", w, i, bytes.Repeat([]byte{'x'}, size))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				if _, err := c.Write([]byte(record(w, i))); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	wg.Wait()
	if err := c.wait(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	all := <-got
	next := make([]int, writers)
	for len(all) > 0 {
		var w, i int
		if _, err := fmt.Sscanf(string(all), "<%d:%d:", &w, &i); err != nil {
			t.Fatalf("garbled stream at %q", all[:min(len(all), 40)])
		}
		if w < 0 || w >= writers || i != next[w] {
			t.Fatalf("writer %d's record %d arrived, want its record %d", w, i, next[w])
		}
		next[w]++
		end := bytes.IndexByte(all, '>')
		if end < 0 || string(all[:end+1]) != record(w, i) {
			t.Fatalf("writer %d's record %d is not whole", w, i)
		}
		all = all[end+1:]
	}
	for w, n := range next {
		if n != writes {
			t.Errorf("writer %d: %d of %d records arrived", w, n, writes)
		}
	}
}

// TestCoalescerReportsFailure: once the connection fails, writes fail
// instead of queueing for a peer that is gone, and wait reports it.
func TestCoalescerReportsFailure(t *testing.T) {
	a, b := tcpPair(t)
	c := newCoalescer(a)
	b.Close()
	a.Close() // the connection fails under the coalescer
	var err error
	for range 100 {
		if _, err = c.Write([]byte("frame")); err != nil {
			break
		}
		if err = c.wait(); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("writes to a closed connection kept succeeding")
	}
	if _, err := c.Write([]byte("more")); err == nil {
		t.Fatal("a write after the failure succeeded")
	}
}
