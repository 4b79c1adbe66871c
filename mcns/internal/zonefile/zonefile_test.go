package zonefile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "mcns.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

const validZone = `; the example zone
$ORIGIN example.test.
$TTL 600
@   IN  SOA ns1 hostmaster (
        2024010100 ; serial (ours is the store's)
        7200       ; refresh
        900        ; retry
        1209600    ; expire
        120 )      ; minimum
    IN  NS  ns1
    IN  MX  10 mail
ns1      300 IN A    192.0.2.53
mail         IN A    192.0.2.25
www          IN A    192.0.2.1
             IN AAAA 2001:db8::1
alias        IN CNAME www
txt          IN TXT  "semi;colon (paren)" "second string"
_sip._tcp    IN SRV  10 5 5060 sip.example.test.
*.wild       IN A    192.0.2.99
`

// records lists a zone's records as "name type ttl value", in store order.
func records(t *testing.T, st *store.Store, zone string) []string {
	t.Helper()
	rs, err := st.Records(context.Background(), zone, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %s %d %s", r.Name, r.Type, r.TTL, r.Value))
	}
	return out
}

func TestImport(t *testing.T) {
	st := openStore(t)
	z, n, err := Import(context.Background(), st, strings.NewReader(validZone), "Example.Test")
	if err != nil {
		t.Fatal(err)
	}
	if z.Name != "example.test." || z.PrimaryNS != "ns1.example.test." || z.AdminEmail != "hostmaster.example.test." ||
		z.Refresh != 7200 || z.Retry != 900 || z.Expire != 1209600 || z.Minimum != 120 || z.TTL != 600 {
		t.Errorf("zone %+v", z)
	}
	if z.Serial == 0 {
		t.Error("zero serial")
	}
	want := []string{
		"_sip._tcp.example.test. SRV 600 10 5 5060 sip.example.test.",
		"*.wild.example.test. A 600 192.0.2.99",
		"alias.example.test. CNAME 600 www.example.test.",
		"example.test. MX 600 10 mail.example.test.",
		"example.test. NS 600 ns1.example.test.",
		"mail.example.test. A 600 192.0.2.25",
		"ns1.example.test. A 300 192.0.2.53",
		`txt.example.test. TXT 600 "semi;colon (paren)" "second string"`,
		"www.example.test. A 600 192.0.2.1",
		"www.example.test. AAAA 600 2001:db8::1",
	}
	got := records(t, st, z.Name)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n != len(want) {
		t.Errorf("imported %d records, want %d", n, len(want))
	}

	// A second import of the same zone changes nothing.
	_, _, err = Import(context.Background(), st, strings.NewReader(validZone), "example.test.")
	if !errors.Is(err, dnsdata.ErrConflict) {
		t.Errorf("second import: %v, want a conflict", err)
	}
	if again := records(t, st, z.Name); len(again) != len(want) {
		t.Errorf("%d records after the refused import", len(again))
	}
}

func TestImportWithoutOrigin(t *testing.T) {
	st := openStore(t)
	z, n, err := Import(context.Background(), st, strings.NewReader(validZone), "")
	if err != nil || z.Name != "example.test." || n != 10 {
		t.Fatalf("zone %s, %d records, %v", z.Name, n, err)
	}
}

func TestImportErrorsWriteNothing(t *testing.T) {
	const soa = "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 120\n"
	for _, tc := range []struct {
		name, file, origin string
		want               []string // in the error message
		is                 error
	}{
		{"unsupported type", soa + "www IN A 192.0.2.1\nbox IN HINFO \"PC\" \"Linux\"\n", "", []string{"line 5", "HINFO", "not supported"}, dnsdata.ErrInvalid},
		{"unsupported type after a multi-line SOA", strings.Replace(validZone, "*.wild", "old IN NAPTR 100 10 \"u\" \"E2U+sip\" \"\" .\n*.wild", 1), "",
			[]string{"line 19", "NAPTR"}, dnsdata.ErrInvalid},
		{"name outside the zone", soa + "www IN A 192.0.2.1\nwww.other.test. IN A 192.0.2.2\n", "", []string{"line 5", "not inside zone"}, dnsdata.ErrInvalid},
		{"bad address", soa + "www IN A 192.0.2.300\n", "", []string{"line: 4"}, nil},
		{"no SOA", "$ORIGIN example.test.\nwww 300 IN A 192.0.2.1\n", "", []string{"no SOA"}, dnsdata.ErrInvalid},
		{"two SOAs", soa + "@ IN SOA ns2 hostmaster 2 7200 900 1209600 120\n", "", []string{"line 4", "second SOA"}, dnsdata.ErrInvalid},
		{"CNAME beside other data", soa + "www IN A 192.0.2.1\nwww IN CNAME other.test.\n", "", []string{"line 5", "line 4", "CNAME"}, dnsdata.ErrConflict},
		{"duplicate record", soa + "www IN A 192.0.2.1\nWWW IN A 192.0.2.1\n", "", []string{"line 5", "repeats line 4"}, dnsdata.ErrConflict},
		{"other class", soa + "www CH A 192.0.2.1\n", "", []string{"line 4", "class CH"}, dnsdata.ErrInvalid},
		{"$GENERATE", soa + "$GENERATE 1-10 host$ A 192.0.2.$\n", "", []string{"line 4", "$GENERATE"}, dnsdata.ErrInvalid},
		{"SOA of another zone", soa, "other.test", []string{"not the origin other.test."}, dnsdata.ErrInvalid},
		{"bad origin", soa, "not a zone!", []string{"origin"}, dnsdata.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			_, _, err := Import(context.Background(), st, strings.NewReader(tc.file), tc.origin)
			if err == nil {
				t.Fatal("imported")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			zones, err := st.ListZones(context.Background())
			if err != nil || len(zones) != 0 {
				t.Errorf("zones after a failed import: %v %v", zones, err)
			}
		})
	}
}

func TestImportRollsBackAFailedWrite(t *testing.T) {
	st := openStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancelling on the zone's creation makes the first record write fail.
	st.OnChange(func(string) { cancel() })
	_, _, err := Import(ctx, st, strings.NewReader(validZone), "example.test.")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want the write's cancellation", err)
	}
	zones, err := st.ListZones(context.Background())
	if err != nil || len(zones) != 0 {
		t.Errorf("zones after the failed write: %v %v", zones, err)
	}
}

func TestExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t), openStore(t)
	if _, _, err := Import(ctx, a, strings.NewReader(validZone), "example.test."); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Export(ctx, a, "example.test.", &buf); err != nil {
		t.Fatal(err)
	}
	za, _ := a.GetZone(ctx, "example.test.")
	zb, n, err := Import(ctx, b, bytes.NewReader(buf.Bytes()), "example.test.")
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if n != 10 || zb.PrimaryNS != za.PrimaryNS || zb.Minimum != za.Minimum || zb.TTL != za.TTL {
		t.Errorf("round trip: %d records, zone %+v, want %+v", n, zb, za)
	}
	if ra, rb := records(t, a, "example.test."), records(t, b, "example.test."); !slices.Equal(ra, rb) {
		t.Errorf("records differ after the round trip:\n%v\n%v", ra, rb)
	}
	if err := Export(ctx, a, "missing.test.", &buf); !errors.Is(err, dnsdata.ErrNotFound) {
		t.Errorf("export of a missing zone: %v", err)
	}
}

func TestEntryLines(t *testing.T) {
	got, err := entryLines([]byte(validZone))
	if err != nil {
		t.Fatal(err)
	}
	want := []int{4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	if !slices.Equal(got, want) {
		t.Errorf("entry lines %v, want %v", got, want)
	}
}
