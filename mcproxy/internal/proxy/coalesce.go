package proxy

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// coalescer gathers the writes of one connection that carries many
// streams at once (an HTTP/2 connection, below its TLS layer) into fewer
// write system calls.
//
// Go's HTTP/2 server writes every frame and flushes as soon as its queue
// is empty: a response's HEADERS and its DATA go out in two writes, and
// so does each of the other streams' frames. A profile of mc-proxy under
// 16 HTTP/2 clients with 10 streams each showed three write(2) calls per
// request (one to the backend, two to the client) and the client's two
// at 29% of the CPU; haproxy, which writes what its event loop gathered
// in one go, spent a third of mc-proxy's CPU per request. A write to a
// coalescer is copied into a buffer and returns; one goroutine per burst
// writes the buffer out, after letting every goroutine that is already
// runnable (other streams' handlers, the server's frame scheduler) add
// their writes. Under load many frames leave in one write; alone, a frame
// leaves as soon as the writer yields, one goroutine switch later.
//
// Backpressure is kept: a writer blocks while maxPending bytes wait, as
// it blocked in write(2) before. A write error is returned by the next
// Write. Close delivers what is pending (a GOAWAY, TLS's close_notify)
// before closing, waiting at most closeFlushTimeout for a peer that
// stopped reading.
type coalescer struct {
	conn net.Conn

	mu sync.Mutex
	// drained is signalled when the pending bytes were written (or the
	// connection failed).
	drained  sync.Cond
	pending  []byte
	spare    []byte
	flushing bool
	err      error
}

// maxPending is how much a coalescer holds before writers wait: four
// full TLS records.
const maxPending = 64 << 10

// closeFlushTimeout bounds how long Close waits for pending bytes to
// leave: a peer that stopped reading must not hold a closing
// connection.
const closeFlushTimeout = 5 * time.Second

func newCoalescer(conn net.Conn) *coalescer {
	c := &coalescer{conn: conn}
	c.drained.L = &c.mu
	return c
}

// Write queues p for the connection.
func (c *coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.pending) >= maxPending {
		c.drained.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.pending = append(c.pending, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(p), nil
}

// flush writes the pending bytes until none are left.
func (c *coalescer) flush() {
	// Everything already runnable runs first and may add to the batch.
	runtime.Gosched()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.err == nil {
		out := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		_, err := c.conn.Write(out)
		c.mu.Lock()
		if err != nil {
			c.err = err
			c.pending = nil
		}
		if cap(out) <= maxPending {
			c.spare = out[:0]
		} else {
			c.spare = nil // a burst's large buffer is not kept for an idle connection
		}
		c.drained.Broadcast()
	}
	c.flushing = false
	c.drained.Broadcast()
}

// drain waits (at most closeFlushTimeout) until what is pending was
// written, for a Close.
func (c *coalescer) drain() error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	return c.wait()
}

// wait blocks until nothing is pending or being written, and reports the
// connection's write error, if any.
func (c *coalescer) wait() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.flushing && c.err == nil {
		c.drained.Wait()
	}
	return c.err
}

// coalescedConn is a connection whose writes go through a coalescer once
// out is set: a backend connection carrying HTTP/2 (h2c, or TLS that
// negotiated h2), where the frames of many requests meet.
type coalescedConn struct {
	net.Conn
	out *coalescer
}

func (c *coalescedConn) Write(p []byte) (int, error) {
	if c.out != nil {
		return c.out.Write(p)
	}
	return c.Conn.Write(p)
}

// Close delivers what is pending before closing.
func (c *coalescedConn) Close() error {
	if c.out != nil {
		_ = c.out.drain()
	}
	return c.Conn.Close()
}
