package zonefile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/rr"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// MaxSize bounds the zone file Import reads.
const MaxSize = 64 << 20

// Import parses an RFC 1035 zone file and creates its zone, from the SOA
// record, and its records. origin, if not empty, is the zone's name and the
// origin of relative names; the SOA's owner must be it. Every record is
// validated as the record API would before anything is written, and a
// failure while writing removes the zone again, so an error leaves the
// store as it was. Import fails if the zone already exists. It returns the
// zone as created and the number of records besides the SOA.
func Import(ctx context.Context, st *store.Store, r io.Reader, origin string) (zone dnsdata.Zone, records int, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone: read: %w", err)
	}
	if len(data) > MaxSize {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone: file larger than %d bytes", MaxSize)
	}
	if origin != "" {
		if origin, err = rr.Zone(origin); err != nil {
			return dnsdata.Zone{}, 0, fmt.Errorf("import zone: origin: %w", err)
		}
	}
	z, recs, err := parse(data, origin)
	if err != nil {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone: %w", err)
	}

	if _, err := st.GetZone(ctx, z.Name); err == nil {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone %s: %w: zone exists", z.Name, dnsdata.ErrConflict)
	} else if !errors.Is(err, dnsdata.ErrNotFound) {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone %s: %w", z.Name, err)
	}
	if _, err := st.CreateZone(ctx, z); err != nil {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone %s: %w", z.Name, err)
	}
	for _, rec := range recs {
		if _, err := st.CreateRecord(ctx, rec); err != nil {
			err = fmt.Errorf("import zone %s: %s %s %s: %w", z.Name, rec.Name, rec.Type, rec.Value, err)
			if derr := st.DeleteZone(context.WithoutCancel(ctx), z.Name); derr != nil {
				return dnsdata.Zone{}, 0, errors.Join(err, fmt.Errorf("remove the partly imported zone: %w", derr))
			}
			return dnsdata.Zone{}, 0, err
		}
	}
	// The zone as it is now, its serial bumped by the records.
	final, err := st.GetZone(ctx, z.Name)
	if err != nil {
		return dnsdata.Zone{}, 0, fmt.Errorf("import zone %s: %w", z.Name, err)
	}
	return final, len(recs), nil
}

// parse reads the zone and its validated records from data without
// touching the store.
func parse(data []byte, origin string) (dnsdata.Zone, []dnsdata.Record, error) {
	lines, err := entryLines(data)
	if err != nil {
		return dnsdata.Zone{}, nil, err
	}
	zp := dns.NewZoneParser(bytes.NewReader(data), origin, "")
	var rrs []dns.RR
	for x, ok := zp.Next(); ok; x, ok = zp.Next() {
		rrs = append(rrs, x)
	}
	if err := zp.Err(); err != nil {
		return dnsdata.Zone{}, nil, fmt.Errorf("parse: %w", err)
	}
	// Each RR comes from one entry; should the two counts ever disagree,
	// name records by position rather than point at the wrong line.
	where := func(i int) string {
		if len(lines) == len(rrs) {
			return fmt.Sprintf("line %d", lines[i])
		}
		return fmt.Sprintf("record %d", i+1)
	}

	soaAt := -1
	for i, x := range rrs {
		if _, ok := x.(*dns.SOA); !ok {
			continue
		}
		if soaAt >= 0 {
			return dnsdata.Zone{}, nil, fmt.Errorf("%s: %w: a second SOA record (the first is at %s)", where(i), dnsdata.ErrInvalid, where(soaAt))
		}
		soaAt = i
	}
	if soaAt < 0 {
		return dnsdata.Zone{}, nil, fmt.Errorf("%w: the zone file has no SOA record", dnsdata.ErrInvalid)
	}
	soa, _ := rrs[soaAt].(*dns.SOA)
	z := dnsdata.Zone{
		Name:       dns.CanonicalName(soa.Hdr.Name),
		PrimaryNS:  soa.Ns,
		AdminEmail: soa.Mbox,
		Refresh:    soa.Refresh,
		Retry:      soa.Retry,
		Expire:     soa.Expire,
		Minimum:    soa.Minttl,
		TTL:        soa.Hdr.Ttl,
	}
	if origin != "" && z.Name != origin {
		return dnsdata.Zone{}, nil, fmt.Errorf("%s: %w: the SOA is for %s, not the origin %s", where(soaAt), dnsdata.ErrInvalid, z.Name, origin)
	}
	if err := rr.ValidateZone(&z); err != nil {
		return dnsdata.Zone{}, nil, fmt.Errorf("%s: SOA: %w", where(soaAt), err)
	}

	recs := make([]dnsdata.Record, 0, len(rrs)-1)
	at := make([]int, 0, len(rrs)-1) // index in rrs of each record
	seen := map[[3]string]int{}
	for i, x := range rrs {
		if i == soaAt {
			continue
		}
		h := x.Header()
		typ, ok := dns.TypeToString[h.Rrtype]
		if !ok {
			typ = fmt.Sprintf("TYPE%d", h.Rrtype)
		}
		if h.Class != dns.ClassINET {
			return dnsdata.Zone{}, nil, fmt.Errorf("%s: %s %s: %w: class %s is not supported (only IN)", where(i), h.Name, typ, dnsdata.ErrInvalid, dns.ClassToString[h.Class])
		}
		rec := dnsdata.Record{Name: h.Name, Type: typ, TTL: h.Ttl, Value: strings.TrimSpace(strings.TrimPrefix(x.String(), h.String()))}
		if err := rr.Validate(z.Name, z.TTL, &rec); err != nil {
			return dnsdata.Zone{}, nil, fmt.Errorf("%s: %s %s: %w", where(i), h.Name, typ, err)
		}
		k := [3]string{rec.Name, rec.Type, rec.Value}
		if j, dup := seen[k]; dup {
			return dnsdata.Zone{}, nil, fmt.Errorf("%s: %w: %s %s %s repeats %s", where(i), dnsdata.ErrConflict, rec.Name, rec.Type, rec.Value, where(j))
		}
		seen[k] = i
		recs = append(recs, rec)
		at = append(at, i)
	}
	// CNAME exclusivity, as the store enforces it, checked up front so
	// the import cannot stop halfway on it.
	firstAt := map[string]int{} // name -> index in recs of its first record
	for i, rec := range recs {
		j, ok := firstAt[rec.Name]
		if !ok {
			firstAt[rec.Name] = i
			continue
		}
		if rec.Type == "CNAME" || recs[j].Type == "CNAME" {
			return dnsdata.Zone{}, nil, fmt.Errorf("%s: %w: %s has a CNAME and other records (see %s); a CNAME cannot share its name",
				where(at[i]), dnsdata.ErrConflict, rec.Name, where(at[j]))
		}
	}
	return z, recs, nil
}

// entryLines returns the line each resource record entry of a zone file
// starts on, in order, skipping directives, comments and the continuation
// lines of parenthesized entries. $GENERATE, which makes many records of
// one line, is refused.
func entryLines(data []byte) ([]int, error) {
	var lines []int
	line, depth := 1, 0
	inQuote, inEntry := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			if depth == 0 && !inQuote {
				inEntry = false
			}
			line++
		case inQuote:
			if c == '\\' && i+1 < len(data) && data[i+1] != '\n' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == ';':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case c == ' ', c == '\t', c == '\r':
		case c == '(':
			depth++
		case c == ')':
			depth = max(depth-1, 0)
		default:
			if c == '"' {
				inQuote = true
			} else if c == '\\' && i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
			if inEntry || depth > 0 {
				continue
			}
			inEntry = true
			if c != '$' {
				lines = append(lines, line)
				continue
			}
			if end := bytes.IndexAny(data[i:], " \t\r\n;"); end > 0 && strings.EqualFold(string(data[i:i+end]), "$GENERATE") ||
				end < 0 && strings.EqualFold(string(data[i:]), "$GENERATE") {
				return nil, fmt.Errorf("line %d: %w: $GENERATE is not supported", line, dnsdata.ErrInvalid)
			}
		}
	}
	return lines, nil
}

// Export writes zone name as a zone file: $ORIGIN, $TTL, the SOA and every
// record, in the store's order (name, type, id).
func Export(ctx context.Context, st *store.Store, name string, w io.Writer) error {
	z, err := st.GetZone(ctx, name)
	if err != nil {
		return fmt.Errorf("export zone: %w", err)
	}
	recs, err := st.Records(ctx, z.Name, "", "")
	if err != nil {
		return fmt.Errorf("export zone %s: %w", z.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL %d\n%s\n", z.Name, z.TTL, rr.SOA(z).String())
	for _, rec := range recs {
		x, err := rr.ToRR(rec)
		if err != nil {
			return fmt.Errorf("export zone %s: %w", z.Name, err)
		}
		b.WriteString(x.String())
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("export zone %s: %w", z.Name, err)
	}
	return nil
}
