package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// errStoreClosed answers DataVersion after Close.
var errStoreClosed = errors.New("data version: store closed")

// dataVersion reads PRAGMA data_version for DataVersion on a connection
// of its own, from one goroutine started at the first call. That
// goroutine exists for speed, not for safety: SQLite's interpreter
// (modernc.org/sqlite's transpiled sqlite3VdbeExec) needs a deep Go
// stack, and a request goroutine running it grows and copies its already
// deep stack every time — in the token validation profile that copy cost
// more than the statement. The reader's stack stays shallow, so its
// growth is cheap, and callers that arrive while it is busy share its
// next read.
type dataVersion struct {
	start sync.Once // starts the reader at the first call
	reqs  chan chan<- versionAnswer
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when the reader has stopped (or never will start)
	close sync.Once
}

func newDataVersion() *dataVersion {
	return &dataVersion{
		reqs: make(chan chan<- versionAnswer),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
}

type versionAnswer struct {
	v   int64
	err error
}

// DataVersion returns a number that differs between two calls whenever
// anything was committed to the database in between — by this process
// or another, such as `mcias recover-admin` run beside the server. It is
// SQLite's PRAGMA data_version, read on a connection kept for it that
// never writes (the pragma does not count a connection's own commits),
// so a caller can cache what it read from the database and know, for the
// price of one small statement, whether the cache still holds. Every
// call is answered by a read that started after the call did. Values
// only compare with other values from the same Store: if the connection
// fails, the next read opens another and its numbers start a new range.
func (s *Store) DataVersion(ctx context.Context) (int64, error) {
	dv := s.dv
	dv.start.Do(func() { go s.readVersions() })
	ch := make(chan versionAnswer, 1)
	select {
	case dv.reqs <- ch:
	case <-dv.stop:
		return 0, errStoreClosed
	case <-ctx.Done():
		return 0, fmt.Errorf("data version: %w", ctx.Err())
	}
	select {
	case a := <-ch:
		return a.v, a.err
	case <-ctx.Done():
		return 0, fmt.Errorf("data version: %w", ctx.Err())
	}
}

// readVersions answers DataVersion calls until the store closes: it takes
// every call waiting, reads once, and answers them all with that read.
func (s *Store) readVersions() {
	dv := s.dv
	defer close(dv.done)
	var (
		conn  *sql.Conn
		stmt  *sql.Stmt
		epoch int64 // connections opened so far
		batch []chan<- versionAnswer
	)
	defer func() {
		if stmt != nil {
			_ = stmt.Close()
			_ = conn.Close()
		}
	}()
	// The reads outlive any one caller: a caller giving up must not
	// interrupt a read and cost the connection.
	ctx := context.Background()
	read := func() (int64, error) {
		if stmt == nil {
			c, err := s.db.Conn(ctx)
			if err != nil {
				return 0, fmt.Errorf("data version: %w", err)
			}
			st, err := c.PrepareContext(ctx, `PRAGMA data_version`)
			if err != nil {
				_ = c.Close()
				return 0, fmt.Errorf("data version: %w", err)
			}
			conn, stmt = c, st
			epoch++
		}
		var v int64
		if err := stmt.QueryRowContext(ctx).Scan(&v); err != nil {
			_ = stmt.Close()
			_ = conn.Close()
			conn, stmt = nil, nil
			return 0, fmt.Errorf("data version: %w", err)
		}
		// data_version is a 32-bit counter of this connection.
		return epoch<<32 | v&0xffffffff, nil
	}
	for {
		select {
		case ch := <-dv.reqs:
			batch = append(batch[:0], ch)
		case <-dv.stop:
			return
		}
	more:
		for {
			select {
			case ch := <-dv.reqs:
				batch = append(batch, ch)
			default:
				break more
			}
		}
		v, err := read()
		for _, ch := range batch {
			ch <- versionAnswer{v, err}
		}
	}
}

// stopVersions ends the reader, if it was started, and waits for it;
// later calls of DataVersion fail.
func (dv *dataVersion) stopVersions() {
	dv.start.Do(func() { close(dv.done) }) // never started: nothing to wait for
	dv.close.Do(func() { close(dv.stop) })
	<-dv.done
}
