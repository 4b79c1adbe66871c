package sshca

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseKRL decodes a KRL as PROTOCOL.krl describes it, strictly (every
// length checked, no trailing bytes, only the sections Marshal writes),
// expanding serial ranges. It is the test's independent reading of the
// format; OpenSSH's own reading is in the openssh tests.
func parseKRL(b []byte) (KRL, error) {
	r := &reader{b: b}
	var k KRL
	if m := r.take(8); string(m) != krlMagic {
		return k, errors.New("bad magic")
	}
	if v := r.u32(); v != krlFormatVersion {
		return k, fmt.Errorf("format version %d", v)
	}
	k.Version = r.u64()
	k.GeneratedAt = time.Unix(int64(r.u64()), 0).UTC() //nolint:gosec // test decoder
	if flags := r.u64(); flags != 0 {
		return k, fmt.Errorf("flags %x", flags)
	}
	r.str() // reserved
	k.Comment = string(r.str())
	seen := map[byte]bool{}
	for r.more() {
		typ := r.u8()
		sec := &reader{b: r.str()}
		if seen[typ] {
			return k, fmt.Errorf("section %d twice", typ)
		}
		seen[typ] = true
		switch typ {
		case krlSectionCertificates:
			k.CAKey = sec.str()
			sec.str() // reserved
			for sec.more() {
				st := sec.u8()
				sub := &reader{b: sec.str()}
				switch st {
				case krlCertSerialList:
					for sub.more() {
						k.Serials = append(k.Serials, sub.u64())
					}
				case krlCertSerialRange:
					lo, hi := sub.u64(), sub.u64()
					if lo == 0 || lo > hi || hi-lo > 1<<20 {
						return k, fmt.Errorf("range %d-%d", lo, hi)
					}
					for s := lo; s <= hi; s++ {
						k.Serials = append(k.Serials, s)
					}
				case krlCertKeyID:
					for sub.more() {
						k.KeyIDs = append(k.KeyIDs, string(sub.str()))
					}
				default:
					return k, fmt.Errorf("certificate subsection %#x", st)
				}
				if err := sub.done(); err != nil {
					return k, err
				}
			}
		case krlSectionExplicitKey, krlSectionFingerprintSHA256:
			for sec.more() {
				blob := sec.str()
				if typ == krlSectionExplicitKey {
					k.Keys = append(k.Keys, blob)
				} else {
					k.SHA256 = append(k.SHA256, blob)
				}
			}
		default:
			return k, fmt.Errorf("section %d", typ)
		}
		if err := sec.done(); err != nil {
			return k, err
		}
	}
	return k, r.done()
}

// reader consumes SSH wire encoding; after a short read every value is
// zero and done reports it.
type reader struct {
	b     []byte
	short bool
}

func (r *reader) more() bool { return len(r.b) > 0 && !r.short }

func (r *reader) take(n int) []byte {
	if r.short || n < 0 || len(r.b) < n {
		r.short = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) done() error {
	if r.short {
		return errors.New("short read")
	}
	if len(r.b) > 0 {
		return fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return nil
}

func (r *reader) u8() byte {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) str() []byte {
	return r.take(int(r.u32()))
}

// TestKRLEncoding checks the layout: ranges for runs of three or more,
// the rest listed, sections only when they have something, and the
// same bytes for the same content in any order.
func TestKRLEncoding(t *testing.T) {
	ca := []byte("ca-key-blob")
	at := time.Unix(1_700_000_000, 0)
	empty, err := KRL{Version: 1, GeneratedAt: at, Comment: "c"}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("SSHKRL\n\x00\x00\x00\x00\x01" + "\x00\x00\x00\x00\x00\x00\x00\x01" + "\x00\x00\x00\x00\x65\x53\xf1\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x01c")
	if !bytes.Equal(empty, want) {
		t.Fatalf("empty KRL:\n%x\nwant\n%x", empty, want)
	}
	k := KRL{Version: 7, GeneratedAt: at, CAKey: ca, Serials: []uint64{9, 1, 2, 3, 5, 10, 11, 3}, KeyIDs: []string{"b", "a"},
		Keys: [][]byte{[]byte("k2"), []byte("k1")}, SHA256: [][]byte{bytes.Repeat([]byte{1}, 32)}}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	list, ranges := serialRuns(k.Serials)
	if !slices.Equal(list, []uint64{5}) || !slices.Equal(ranges, [][2]uint64{{1, 3}, {9, 11}}) {
		t.Fatalf("runs: %v %v", list, ranges)
	}
	got, err := parseKRL(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 7 || !got.GeneratedAt.Equal(at) || string(got.CAKey) != "ca-key-blob" ||
		!slices.Equal(got.Serials, []uint64{1, 2, 3, 9, 10, 11, 5}) || !slices.Equal(got.KeyIDs, []string{"a", "b"}) ||
		string(got.Keys[0]) != "k1" || len(got.SHA256) != 1 {
		t.Fatalf("decoded: %+v", got)
	}
	slices.Reverse(k.Serials)
	slices.Reverse(k.Keys)
	if b2, _ := k.Marshal(); !bytes.Equal(b, b2) {
		t.Fatal("order changes the encoding")
	}
	for name, bad := range map[string]KRL{
		"serial 0":   {CAKey: ca, Serials: []uint64{0}},
		"no CA":      {Serials: []uint64{1}},
		"NUL":        {Comment: "a\x00"},
		"key ID":     {KeyIDs: []string{""}},
		"short hash": {SHA256: [][]byte{{1}}},
	} {
		if _, err := bad.Marshal(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// FuzzKRL encodes arbitrary revocation sets and decodes them again: the
// same sets come back, sorted and deduplicated, whatever runs they form.
func FuzzKRL(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 7}, "alice,bob", "comment", uint64(3))
	f.Add([]byte{}, "", "", uint64(0))
	f.Add([]byte{0xff, 0xff, 0, 1, 0xff, 0xfe}, "a,,b", "x", uint64(1<<63))
	f.Fuzz(func(t *testing.T, raw []byte, ids, comment string, version uint64) {
		var serials []uint64
		for i := 0; i+1 < len(raw); i += 2 {
			serials = append(serials, uint64(binary.BigEndian.Uint16(raw[i:])))
		}
		var keyIDs []string
		if ids != "" {
			keyIDs = strings.Split(ids, ",")
		}
		k := KRL{Version: version, GeneratedAt: time.Unix(1, 0), Comment: comment, CAKey: []byte("ca"), Serials: serials, KeyIDs: keyIDs}
		b, err := k.Marshal()
		if err != nil {
			if !slices.Contains(serials, 0) && !strings.Contains(comment, "\x00") &&
				!slices.ContainsFunc(keyIDs, func(s string) bool { return s == "" || strings.Contains(s, "\x00") }) {
				t.Fatalf("refused a valid KRL: %v", err)
			}
			return
		}
		got, err := parseKRL(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		slices.Sort(got.Serials)
		if !slices.Equal(got.Serials, sortedUnique(serials, cmp.Compare[uint64])) {
			t.Fatalf("serials %v, want %v", got.Serials, serials)
		}
		if !slices.Equal(got.KeyIDs, sortedUnique(keyIDs, strings.Compare)) || got.Version != version || got.Comment != comment {
			t.Fatalf("decoded %+v", got)
		}
	})
}
