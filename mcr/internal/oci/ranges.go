package oci

import (
	"fmt"
	"strconv"
	"strings"
)

// ChunkRange is an inclusive byte range of an upload chunk
// (Content-Range on PATCH and on the closing PUT).
type ChunkRange struct {
	Start, End int64
}

// Len is the number of bytes the range covers.
func (r ChunkRange) Len() int64 { return r.End - r.Start + 1 }

// ParseContentRange parses an upload chunk's Content-Range. The spec's form
// is "<start>-<end>" (^[0-9]+-[0-9]+$); the RFC 9110 forms clients also
// send ("bytes <start>-<end>/<total or *>", "bytes=<start>-<end>") are
// accepted. end must not be before start.
func ParseContentRange(s string) (ChunkRange, error) {
	v := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(v, "bytes="):
		v = v[len("bytes="):]
	case strings.HasPrefix(v, "bytes "):
		v = strings.TrimSpace(v[len("bytes "):])
	}
	if i := strings.IndexByte(v, '/'); i >= 0 {
		total := v[i+1:]
		if total != "*" {
			if _, err := parseUint(total); err != nil {
				return ChunkRange{}, fmt.Errorf("content-range %q: bad total", truncate(s))
			}
		}
		v = v[:i]
	}
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return ChunkRange{}, fmt.Errorf("content-range %q: want <start>-<end>", truncate(s))
	}
	start, err := parseUint(a)
	if err != nil {
		return ChunkRange{}, fmt.Errorf("content-range %q: bad start", truncate(s))
	}
	end, err := parseUint(b)
	if err != nil {
		return ChunkRange{}, fmt.Errorf("content-range %q: bad end", truncate(s))
	}
	if end < start {
		return ChunkRange{}, fmt.Errorf("content-range %q: end before start", truncate(s))
	}
	return ChunkRange{Start: start, End: end}, nil
}

// parseUint accepts only decimal digits (no sign, no spaces), at most 18 so
// the value and End+1 never overflow int64.
func parseUint(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad number %q", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// UploadRange is the Range header of an upload status: "0-<last byte>",
// where an empty upload reports "0-0" as distribution does (clients parse
// the form, and none resumes an empty upload).
func UploadRange(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return fmt.Sprintf("0-%d", size-1)
}
