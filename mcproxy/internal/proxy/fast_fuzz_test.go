package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// FuzzFastParse: every request head the fast path takes, net/http parses
// too, and reads the same way: method, target (as the net/http path would
// send it on), Host, Content-Length, Connection: close and each header
// line passed on. Whatever the fast path is unsure of goes to net/http,
// so a head they would read differently must never be taken.
func FuzzFastParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
		"POST /a?b=c HTTP/1.1\r\nHost: APP.test:443\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
		"GET /%41%2f HTTP/1.1\r\nhost: app.test.\r\nX-A: \t1 \r\nCookie: a\r\nCookie: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: app.test\r\n X: folded\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		end, bad := headEnd(in)
		if bad || end < 0 {
			return
		}
		r := fastRequest{head: in[:end]}
		if !r.parse("app.test") {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in[:end])))
		if err != nil {
			t.Fatalf("fast path took %q, net/http refuses it: %v", in[:end], err)
		}
		if req.Method != r.method || req.RequestURI != string(r.target) {
			t.Fatalf("%q: net/http reads %s %s", in[:end], req.Method, req.RequestURI)
		}
		if uri := req.URL.RequestURI(); uri != string(r.target) || cleanQuery(req.URL.RawQuery) != req.URL.RawQuery {
			t.Fatalf("%q: the net/http path would send %q", in[:end], uri)
		}
		if normalizeHostHeader(req.Host) != r.host {
			t.Fatalf("%q: Host %q, fast path %q", in[:end], req.Host, r.host)
		}
		if req.ContentLength != int64(r.body) || req.Close != r.close || len(req.TransferEncoding) > 0 {
			t.Fatalf("%q: net/http length %d close %v te %v; fast path %d %v", in[:end], req.ContentLength, req.Close, req.TransferEncoding, r.body, r.close)
		}
		for _, l := range r.lines {
			name, value, _ := strings.Cut(strings.TrimSuffix(string(l), "\r\n"), ":")
			value = strings.Trim(value, " \t")
			k := textproto.CanonicalMIMEHeaderKey(name)
			found := false
			for _, v := range req.Header[k] {
				found = found || v == value
			}
			if !found {
				t.Fatalf("%q: line %q passed on, net/http has %s = %q", in[:end], l, k, req.Header[k])
			}
		}
	})
}
