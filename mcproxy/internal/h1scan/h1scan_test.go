package h1scan

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// frame is where one request's header block and body end in the stream.
type frame struct{ header, body int }

// scan feeds data one byte at a time and reports the frames the scanner
// completed, whether it stopped and the refused request (-1: none).
func scan(data []byte) (frames []frame, stopped bool, refused int) {
	s := New(1 << 20)
	open := -1 // header end of the request whose body is being read
	for i := range data {
		before := s.requests
		_, _ = s.Write(data[i : i+1])
		if s.requests > before {
			open = i + 1
		}
		if open >= 0 && s.state == stRequestLine {
			frames = append(frames, frame{open, i + 1})
			open = -1
		}
	}
	return frames, s.state == stStopped, s.refused
}

// goFrames is what net/http makes of the same stream: the frames of the
// requests it reads completely (header and body) before an error.
func goFrames(data []byte) []frame {
	cr := &countingReader{r: bytes.NewReader(data)}
	br := bufio.NewReaderSize(cr, 4096)
	var out []frame
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		header := cr.n - br.Buffered()
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return out
		}
		out = append(out, frame{header, cr.n - br.Buffered()})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestScan(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	const smuggled = "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	for _, tc := range []struct {
		name     string
		stream   string
		requests int
		refused  int
		reason   string
	}{
		{"pipelined gets", get + get + get, 3, -1, ""},
		{"content-length body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" + get, 2, -1, ""},
		{"body looks like a request", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" +
			smuggled + get, 2, -1, ""},
		{"chunked with extension and trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n" +
			"5;name=val\r\nhello\r\n3  \r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n" + get, 2, -1, ""},
		{"bare LF headers", "GET / HTTP/1.1\nHost: a\n\n" + get, 2, -1, ""},
		{"cl and te", get + "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, 2, 1, ReasonCLAndTE},
		{"te and cl, any case", "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n", 1, 0, ReasonCLAndTE},
		{"te on http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, 0, ReasonTE10},
		{"cl on http/1.0", "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi" + get, 2, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(1 << 16)
			// Fed in uneven pieces, as reads arrive.
			data := []byte(tc.stream)
			for len(data) > 0 {
				n := min(len(data), 7)
				_, _ = s.Write(data[:n])
				data = data[n:]
			}
			if s.requests != tc.requests {
				t.Errorf("requests %d, want %d", s.requests, tc.requests)
			}
			for n := range tc.requests + 1 {
				reason, refused := s.Refused(n)
				if refused != (n == tc.refused) || reason != tc.reason && refused {
					t.Errorf("Refused(%d) = %q, %v; want refused request %d (%q)", n, reason, refused, tc.refused, tc.reason)
				}
			}
			if got := goFrames([]byte(tc.stream)); tc.refused < 0 && len(got) != tc.requests {
				t.Errorf("net/http reads %d requests, the scanner %d", len(got), tc.requests)
			}
		})
	}
}

// TestScanStops: input net/http refuses, or that the scanner does not
// follow, stops it without a claim about later requests.
func TestScanStops(t *testing.T) {
	for name, stream := range map[string]string{
		"bad chunk size":     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"chunk bare lf":      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n",
		"chunk no crlf":      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
		"te not chunked":     "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"two te":             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"cl differ":          "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"cl sign":            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
		"obs-fold":           "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"no colon":           "GET / HTTP/1.1\r\nX\r\n\r\n",
		"bad request line":   "GET /\r\n\r\n",
		"bad version":        "GET / HTTP/1.x\r\n\r\n",
		"header too large":   "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 1<<16) + "\r\n\r\n",
		"chunk line too big": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + strings.Repeat("x", 5000) + "\r\n",
	} {
		s := New(1 << 16)
		_, _ = s.Write([]byte(stream))
		if s.state != stStopped {
			t.Errorf("%s: not stopped (state %d)", name, s.state)
		}
		if _, refused := s.Refused(0); refused {
			t.Errorf("%s: refused", name)
		}
	}
}

// FuzzScan holds the scanner to net/http's framing: every request
// net/http reads completely ends, header and body, where the scanner
// says, unless the scanner stopped before it.
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x\r\nhello\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\r\nContent-Length:  007 \r\n\r\n1234567",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, stopped, refused := scan(data)
		want := goFrames(data)
		for i := range min(len(frames), len(want)) {
			if frames[i] != want[i] {
				t.Fatalf("request %d: scanner %+v, net/http %+v", i, frames[i], want[i])
			}
		}
		if !stopped && len(frames) < len(want) {
			t.Fatalf("scanner followed %d requests without stopping; net/http read %d", len(frames), len(want))
		}
		if refused >= 0 && refused > len(frames) {
			t.Fatalf("refused request %d of %d", refused, len(frames))
		}
	})
}
