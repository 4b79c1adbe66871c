// Package proxyproto reads and writes the HAProxy PROXY protocol (v1 text
// and v2 binary), which carries the original client address across a TCP
// proxy hop. The reader consumes exactly the header and nothing after it,
// so the connection can be handed on unchanged.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// v2Sig is the 12-byte PROXY v2 signature.
var v2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// ErrInvalid is wrapped by every malformed-header error.
var ErrInvalid = errors.New("proxyproto: invalid header")

// v1Max is the longest v1 header, CRLF included (spec §2.1).
const v1Max = 107

// Header is a parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local is true for a v2 LOCAL command or a v1 UNKNOWN line: the
	// sender's own connection (a health check); addresses are not set and
	// the connection's real addresses apply.
	Local bool
	// Source is the original client; Destination the address it connected to.
	Source, Destination netip.AddrPort
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Read parses one header from r, reading no byte past it.
func Read(r io.Reader) (Header, error) {
	var pre [6]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read header: %w", err)
	}
	switch {
	case string(pre[:]) == "PROXY ":
		return readV1(r)
	case bytes.Equal(pre[:], v2Sig[:6]):
		return readV2(r)
	default:
		return Header{}, invalid("no PROXY signature")
	}
}

func readV1(r io.Reader) (Header, error) {
	line := make([]byte, 0, v1Max)
	line = append(line, "PROXY "...)
	var b [1]byte
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) >= v1Max {
			return Header{}, invalid("v1 line longer than %d bytes", v1Max)
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("proxyproto: read v1 header: %w", err)
		}
		line = append(line, b[0])
	}
	return parseV1(string(line[:len(line)-2]))
}

func parseV1(line string) (Header, error) {
	f := strings.Split(line, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return Header{Version: 1, Local: true}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, invalid("v1 line %q", line)
	}
	src, err := v1Addr(f[2], f[4], f[1] == "TCP4")
	if err != nil {
		return Header{}, err
	}
	dst, err := v1Addr(f[3], f[5], f[1] == "TCP4")
	if err != nil {
		return Header{}, err
	}
	return Header{Version: 1, Source: src, Destination: dst}, nil
}

func v1Addr(ip, port string, v4 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() != v4 || a.Zone() != "" {
		return netip.AddrPort{}, invalid("v1 address %q", ip)
	}
	if port == "" || (len(port) > 1 && port[0] == '0') {
		return netip.AddrPort{}, invalid("v1 port %q", port)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, invalid("v1 port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func readV2(r io.Reader) (Header, error) {
	var hdr [10]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read v2 header: %w", err)
	}
	if !bytes.Equal(hdr[:6], v2Sig[6:]) {
		return Header{}, invalid("bad v2 signature")
	}
	verCmd, fam := hdr[6], hdr[7]
	n := int(binary.BigEndian.Uint16(hdr[8:10]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("proxyproto: read v2 addresses: %w", err)
	}
	if verCmd>>4 != 2 {
		return Header{}, invalid("v2 version %d", verCmd>>4)
	}
	switch verCmd & 0x0f {
	case 0x0: // LOCAL
		return Header{Version: 2, Local: true}, nil
	case 0x1: // PROXY
	default:
		return Header{}, invalid("v2 command %d", verCmd&0x0f)
	}
	switch fam {
	case 0x11: // TCP over IPv4
		if n < 12 {
			return Header{}, invalid("v2 ipv4 block of %d bytes", n)
		}
		return Header{
			Version:     2,
			Source:      netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10])),
			Destination: netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12])),
		}, nil
	case 0x21: // TCP over IPv6
		if n < 36 {
			return Header{}, invalid("v2 ipv6 block of %d bytes", n)
		}
		return Header{
			Version:     2,
			Source:      netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])).Unmap(), binary.BigEndian.Uint16(body[32:34])),
			Destination: netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])).Unmap(), binary.BigEndian.Uint16(body[34:36])),
		}, nil
	default:
		// UNSPEC, UDP and unix sockets: the spec says to accept the
		// connection and use its real addresses.
		return Header{Version: 2, Local: true}, nil
	}
}

// AppendV2 appends a v2 PROXY header for a TCP connection from src to dst.
// Mixed families are sent as IPv6 (IPv4-mapped).
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, v2Sig...)
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is4() && da.Is4() {
		b = append(b, 0x21, 0x11, 0, 12)
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21, 0x21, 0, 36)
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// AppendV2Local appends a v2 LOCAL header (a connection of the sender's own).
func AppendV2Local(b []byte) []byte {
	b = append(b, v2Sig...)
	return append(b, 0x20, 0x00, 0, 0)
}
