// Package h1scan follows the framing of the HTTP/1.x requests in a
// client's byte stream, alongside net/http, to see what net/http
// normalizes away before a handler runs.
//
// net/http accepts a request that carries both Content-Length and
// Transfer-Encoding: chunked, drops the Content-Length and reads the body
// as chunked, which RFC 9112 §6.3 allows an intermediary to do. Such a
// request is the signature of request smuggling (a front end that trusted
// the Content-Length and mc-proxy would disagree on where the next request
// starts), so mc-proxy refuses it with 400 and closes the connection, as
// nginx does and as RFC 9112 §6.1 requires of a server that answers it.
// Transfer-Encoding on an HTTP/1.0 request, which net/http ignores, is
// refused the same way. The handler cannot see either case: net/http has
// already removed the evidence from the header map.
//
// A Scanner is fed every byte net/http reads from the connection, before
// net/http sees it, and counts header blocks exactly as net/http counts
// requests: it skips bodies by Content-Length and chunked framing with
// net/http's rules (the chunk-size line, the CRLF after each chunk, the
// trailer section). It is a scanner rather than a parser: it never
// changes or withholds a byte, and net/http stays the only parser that
// decides anything. Where it cannot follow the stream as net/http would
// (input net/http answers with an error and a closed connection, an
// obs-fold header, a header block larger than the limit) it stops and
// claims nothing more about that connection.
package h1scan

import (
	"bytes"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

// Reasons a request is refused.
const (
	ReasonCLAndTE = "both Content-Length and Transfer-Encoding"
	ReasonTE10    = "Transfer-Encoding in an HTTP/1.0 request"
)

// maxChunkLine is net/http's limit on a chunk-size line (its bufio
// buffer): a longer one is an error there.
const maxChunkLine = 4096

// maxTrailer bounds a trailer section: net/http refuses one that does
// not end within its 4 KiB read buffer.
const maxTrailer = 4096

type state uint8

const (
	stRequestLine state = iota
	stHeader
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
	stStopped
)

// Scanner follows one connection's requests. It is safe for concurrent
// use (net/http reads from a background goroutine while a handler runs).
type Scanner struct {
	mu sync.Mutex

	maxHeader int
	state     state
	// line is the line being read (without its LF); block counts the
	// bytes of the current header block or trailer section.
	line  []byte
	block int
	// http10 is set when the request line says HTTP/1.0 (or older).
	http10 bool
	// cl and te are the Content-Length and Transfer-Encoding field values
	// of the current header block.
	cl, te []string
	// remaining is what is left of a body or chunk; crlf counts the bytes
	// of the CRLF after a chunk's data seen so far.
	remaining uint64
	crlf      int

	requests int
	refused  int
	reason   string
}

// New returns a Scanner for a new connection. maxHeader bounds a header
// block; it must be at least what the server accepts (net/http:
// MaxHeaderBytes plus its 4 KiB read buffer), or a larger block Go
// accepts would stop the scan.
func New(maxHeader int) *Scanner {
	return &Scanner{maxHeader: maxHeader, refused: -1}
}

// Refused reports whether request n (0 for the first on the connection,
// counted as net/http hands requests to the handler) is to be refused,
// and why.
func (s *Scanner) Refused(n int) (reason string, refused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused >= 0 && s.refused == n {
		return s.reason, true
	}
	return "", false
}

// Write feeds the next bytes of the stream. It never fails.
func (s *Scanner) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 && s.state != stStopped {
		switch s.state {
		case stBody, stChunkData:
			k := uint64(len(p))
			k = min(k, s.remaining)
			p = p[k:]
			s.remaining -= k
			if s.remaining > 0 {
				continue
			}
			if s.state == stBody {
				s.state = stRequestLine
			} else {
				s.state, s.crlf = stChunkEnd, 0
			}
		case stChunkEnd:
			if p[0] != "\r\n"[s.crlf] {
				s.stop()
				continue
			}
			p = p[1:]
			if s.crlf++; s.crlf == 2 {
				s.state = stChunkSize
			}
		default:
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i]
			}
			if !s.grow(len(chunk) + 1) {
				continue
			}
			s.line = append(s.line, chunk...)
			if i < 0 {
				p = nil
				continue
			}
			p = p[i+1:]
			s.endLine()
			s.line = s.line[:0]
		}
	}
	return n, nil
}

// grow accounts for n more bytes of the current line and stops the scan
// if they exceed what net/http accepts.
func (s *Scanner) grow(n int) bool {
	s.block += n
	limit := s.maxHeader
	switch s.state {
	case stChunkSize:
		limit = maxChunkLine + 2
		s.block = len(s.line) + n
	case stTrailer:
		limit = maxTrailer
	}
	if s.block > limit {
		s.stop()
		return false
	}
	return true
}

func (s *Scanner) stop() {
	s.state = stStopped
	s.line, s.cl, s.te = nil, nil, nil
}

// endLine handles a complete line (its LF removed).
func (s *Scanner) endLine() {
	switch s.state {
	case stRequestLine:
		proto, ok := requestLineVersion(trimCR(s.line))
		if !ok {
			s.stop()
			return
		}
		major, minor, ok := parseVersion(proto)
		if !ok {
			s.stop()
			return
		}
		s.http10 = major < 1 || (major == 1 && minor < 1)
		s.cl, s.te = s.cl[:0], s.te[:0]
		s.state = stHeader
	case stHeader:
		line := trimCR(s.line)
		if len(line) == 0 {
			s.endHeader()
			return
		}
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold: net/http joins it to the previous field (or
			// refuses it); not followed here.
			s.stop()
			return
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			s.stop()
			return
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			s.cl = append(s.cl, textproto.TrimString(string(value)))
		case asciiEqualFold(name, "Transfer-Encoding"):
			s.te = append(s.te, textproto.TrimString(string(value)))
		}
	case stChunkSize:
		// net/http: CRLF only, no other CR; extensions after ';' ignored.
		line := s.line
		if len(line) == 0 || line[len(line)-1] != '\r' || bytes.IndexByte(line, '\r') != len(line)-1 {
			s.stop()
			return
		}
		line = line[:len(line)-1]
		if len(line) >= maxChunkLine {
			s.stop()
			return
		}
		line = bytes.TrimRight(line, " \t")
		line, _, _ = bytes.Cut(line, []byte(";"))
		n, ok := parseHex(line)
		if !ok {
			s.stop()
			return
		}
		if n == 0 {
			s.state, s.block = stTrailer, 0
			return
		}
		s.state, s.remaining = stChunkData, n
	case stTrailer:
		if len(trimCR(s.line)) == 0 {
			s.state, s.block = stRequestLine, 0
		}
	}
}

// endHeader decides the body framing of a complete header block, as
// net/http's fixLength does, and whether the request is refused.
func (s *Scanner) endHeader() {
	n := s.requests
	s.requests++
	s.block = 0
	switch {
	case len(s.te) > 0 && len(s.cl) > 0:
		s.refuse(n, ReasonCLAndTE)
	case len(s.te) > 0 && s.http10:
		s.refuse(n, ReasonTE10)
	case len(s.te) > 0:
		if len(s.te) != 1 || !strings.EqualFold(s.te[0], "chunked") {
			s.stop() // net/http: 501 and close
			return
		}
		s.state = stChunkSize
	case len(s.cl) > 0:
		for _, v := range s.cl[1:] {
			if v != s.cl[0] {
				s.stop() // net/http: 400 and close
				return
			}
		}
		length, err := strconv.ParseUint(s.cl[0], 10, 63)
		if err != nil {
			s.stop()
			return
		}
		s.state, s.remaining = stBody, length
		if length == 0 {
			s.state = stRequestLine
		}
	default:
		s.state = stRequestLine
	}
}

func (s *Scanner) refuse(n int, reason string) {
	s.refused, s.reason = n, reason
	s.stop()
}

// requestLineVersion is the version of a request line split as
// net/http splits it: method SP request-target SP version, at the first
// two spaces.
func requestLineVersion(line []byte) (proto []byte, ok bool) {
	_, rest, ok1 := bytes.Cut(line, []byte(" "))
	_, p, ok2 := bytes.Cut(rest, []byte(" "))
	return p, ok1 && ok2
}

// parseVersion is http.ParseHTTPVersion, without converting the common
// versions to a string (a request line is scanned per request).
func parseVersion(proto []byte) (major, minor int, ok bool) {
	switch string(proto) {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	return http.ParseHTTPVersion(string(proto))
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// parseHex is net/http's chunk-size parser: 1 to 16 hex digits.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}
