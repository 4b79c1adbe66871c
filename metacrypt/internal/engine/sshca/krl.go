package sshca

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The constants of OpenSSH's PROTOCOL.krl.
const (
	krlMagic         = "SSHKRL\n\x00"
	krlFormatVersion = 1

	krlSectionCertificates      = 1
	krlSectionExplicitKey       = 2
	krlSectionFingerprintSHA256 = 5

	krlCertSerialList  = 0x20
	krlCertSerialRange = 0x21
	krlCertKeyID       = 0x23
)

// minRange is the shortest run of consecutive serials written as a
// range: a range subsection costs 21 bytes, a listed serial 8.
const minRange = 3

// KRL is what a key revocation list says: the certificates one CA signed
// that are revoked (by serial or key ID) and the keys revoked outright
// (by their wire blob or the SHA-256 of it).
type KRL struct {
	// Version increases with every change (krl_version).
	Version     uint64
	GeneratedAt time.Time
	Comment     string
	// CAKey is the CA's public key in SSH wire form; the certificate
	// section applies to its certificates.
	CAKey   []byte
	Serials []uint64
	KeyIDs  []string
	// Keys are plain (not certificate) public key blobs.
	Keys [][]byte
	// SHA256 are SHA-256 hashes of plain public key blobs.
	SHA256 [][]byte
}

// Marshal encodes the KRL in OpenSSH's binary format, unsigned, with
// every list sorted and deduplicated: the same KRL always encodes to the
// same bytes.
func (k KRL) Marshal() ([]byte, error) {
	if strings.IndexByte(k.Comment, 0) >= 0 {
		return nil, errors.New("krl: comment contains a NUL byte")
	}
	if slices.Contains(k.Serials, 0) {
		return nil, errors.New("krl: serial 0 cannot be revoked")
	}
	for _, id := range k.KeyIDs {
		if id == "" || strings.IndexByte(id, 0) >= 0 {
			return nil, fmt.Errorf("krl: key ID %q is empty or contains a NUL byte", id)
		}
	}
	for _, h := range k.SHA256 {
		if len(h) != 32 {
			return nil, fmt.Errorf("krl: SHA-256 hash of %d bytes", len(h))
		}
	}
	if len(k.CAKey) == 0 && len(k.Serials) > 0 {
		return nil, errors.New("krl: serials need the CA key")
	}

	var b wire
	b.raw([]byte(krlMagic))
	b.u32(krlFormatVersion)
	b.u64(k.Version)
	b.u64(uint64(max(k.GeneratedAt.Unix(), 0)))
	b.u64(0)   // flags: none defined
	b.str(nil) // reserved
	b.str([]byte(k.Comment))

	if len(k.Serials)+len(k.KeyIDs) > 0 {
		var sec wire
		sec.str(k.CAKey)
		sec.str(nil) // reserved
		list, ranges := serialRuns(k.Serials)
		for _, r := range ranges {
			var sub wire
			sub.u64(r[0])
			sub.u64(r[1])
			sec.section(krlCertSerialRange, sub)
		}
		if len(list) > 0 {
			var sub wire
			for _, s := range list {
				sub.u64(s)
			}
			sec.section(krlCertSerialList, sub)
		}
		if ids := sortedUnique(k.KeyIDs, strings.Compare); len(ids) > 0 {
			var sub wire
			for _, id := range ids {
				sub.str([]byte(id))
			}
			sec.section(krlCertKeyID, sub)
		}
		b.section(krlSectionCertificates, sec)
	}
	for _, s := range []struct {
		typ   byte
		blobs [][]byte
	}{{krlSectionExplicitKey, k.Keys}, {krlSectionFingerprintSHA256, k.SHA256}} {
		blobs := sortedUnique(s.blobs, bytes.Compare)
		if len(blobs) == 0 {
			continue
		}
		var sec wire
		for _, blob := range blobs {
			sec.str(blob)
		}
		b.section(s.typ, sec)
	}
	return b, nil
}

// serialRuns splits serials, sorted and deduplicated, into the ones
// listed one by one and the [min, max] ranges of at least minRange
// consecutive serials.
func serialRuns(serials []uint64) (list []uint64, ranges [][2]uint64) {
	s := sortedUnique(serials, cmp.Compare[uint64])
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if j-i+1 >= minRange {
			ranges = append(ranges, [2]uint64{s[i], s[j]})
		} else {
			list = append(list, s[i:j+1]...)
		}
		i = j + 1
	}
	return list, ranges
}

func sortedUnique[T any](in []T, compare func(a, b T) int) []T {
	out := slices.Clone(in)
	slices.SortFunc(out, compare)
	return slices.CompactFunc(out, func(a, b T) bool { return compare(a, b) == 0 })
}

// wire builds SSH wire encoding (RFC 4251 §5): big-endian integers and
// uint32-length-prefixed strings.
type wire []byte

func (w *wire) raw(b []byte) { *w = append(*w, b...) }
func (w *wire) u32(v uint32) { *w = binary.BigEndian.AppendUint32(*w, v) }
func (w *wire) u64(v uint64) { *w = binary.BigEndian.AppendUint64(*w, v) }

func (w *wire) str(b []byte) {
	w.u32(uint32(len(b))) //nolint:gosec // blobs are far below 4 GiB
	w.raw(b)
}

// section appends a typed section: its type byte, then its data as a
// string.
func (w *wire) section(typ byte, data wire) {
	*w = append(*w, typ)
	w.str(data)
}
