package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
)

func TestRead(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("192.0.2.1:56324"), netip.MustParseAddrPort("198.51.100.2:443")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::1]:1000"), netip.MustParseAddrPort("[2001:db8::2]:443")
	cases := []struct {
		name string
		in   []byte
		want Header
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"), Header{Version: 1, Source: src4, Destination: dst4}},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1000 443\r\n"), Header{Version: 1, Source: src6, Destination: dst6}},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), Header{Version: 1, Local: true}},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"), Header{Version: 1, Local: true}},
		{"v2 tcp4", AppendV2(nil, src4, dst4), Header{Version: 2, Source: src4, Destination: dst4}},
		{"v2 tcp6", AppendV2(nil, src6, dst6), Header{Version: 2, Source: src6, Destination: dst6}},
		{"v2 mixed", AppendV2(nil, src4, dst6), Header{Version: 2, Source: src4, Destination: dst6}},
		{"v2 local", AppendV2Local(nil), Header{Version: 2, Local: true}},
		{"v2 tcp4 with tlv", append(append(append([]byte(nil), v2Sig...), 0x21, 0x11, 0, 15), append(AppendV2(nil, src4, dst4)[16:], 0x04, 0, 0)...), Header{Version: 2, Source: src4, Destination: dst4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(append(tc.in, "rest"...))
			h, err := Read(r)
			if err != nil {
				t.Fatal(err)
			}
			if h != tc.want {
				t.Fatalf("got %+v, want %+v", h, tc.want)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != "rest" {
				t.Fatalf("read past the header: %q left", rest)
			}
		})
	}
}

func TestReadRejects(t *testing.T) {
	bad2 := AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"))
	bad2[12] = 0x31 // version 3
	short := append(append([]byte(nil), v2Sig...), 0x21, 0x11, 0, 4, 1, 2, 3, 4)
	cases := map[string][]byte{
		"garbage":        []byte("GET / HTTP/1.1\r\n"),
		"v1 no crlf":     bytes.Repeat([]byte("PROXY "), 30),
		"v1 tcp4 v6addr": []byte("PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n"),
		"v1 bad port":    []byte("PROXY TCP4 192.0.2.1 192.0.2.2 99999 2\r\n"),
		"v1 lead zero":   []byte("PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n"),
		"v1 fields":      []byte("PROXY TCP4 192.0.2.1\r\n"),
		"v2 version":     bad2,
		"v2 short block": short,
		"v2 truncated":   AppendV2Local(nil)[:14],
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if h, err := Read(bytes.NewReader(in)); err == nil {
				t.Fatalf("accepted as %+v", h)
			}
		})
	}
	if _, err := Read(bytes.NewReader([]byte("HELLO WORLD"))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1000 443\r\nxyz"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("192.0.2.1:5"), netip.MustParseAddrPort("192.0.2.2:6")))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("[2001:db8::1]:5"), netip.MustParseAddrPort("[::1]:6")))
	f.Add(AppendV2Local(nil))
	f.Add([]byte("\x16\x03\x01\x00\x10garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(r)
		if err != nil {
			return
		}
		if consumed := len(in) - r.Len(); h.Version == 1 && consumed > v1Max {
			t.Fatalf("v1 header of %d bytes accepted", consumed)
		}
		if !h.Local {
			// What was parsed must survive a v2 round trip.
			back, err := Read(bytes.NewReader(AppendV2(nil, h.Source, h.Destination)))
			if err != nil || back.Source != h.Source || back.Destination != h.Destination {
				t.Fatalf("round trip of %+v: %+v, %v", h, back, err)
			}
		}
	})
}
