package server_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"git.metacircular.net/metacircular/mcns/client"
)

// dnsAsker sends raw UDP queries to MCNS, each with its own ID and the
// name spelled in mixed case (0x20), and checks that the reply echoes both
// exactly.
type dnsAsker struct {
	t    *testing.T
	conn net.Conn
	id   uint16
}

func newDNSAsker(t *testing.T, addr string) *dnsAsker {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &dnsAsker{t: t, conn: conn, id: 0x3a00}
}

// mixedCase spells name with every other letter in upper case.
func mixedCase(name string) string {
	b := []byte(name)
	for i, c := range b {
		if i%2 == 1 && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// ask sends the question three times (so that the server's answer cache
// holds the reply, whatever its kind) and returns the last reply.
func (a *dnsAsker) ask(name string, qtype uint16) *dns.Msg {
	a.t.Helper()
	var m *dns.Msg
	for range 3 {
		m = a.once(name, qtype)
	}
	return m
}

func (a *dnsAsker) once(name string, qtype uint16) *dns.Msg {
	a.t.Helper()
	a.id++
	q := new(dns.Msg)
	q.SetQuestion(mixedCase(name), qtype)
	q.Id = a.id
	raw, err := q.Pack()
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.conn.Write(raw); err != nil {
		a.t.Fatal(err)
	}
	if err := a.conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		a.t.Fatal(err)
	}
	buf := make([]byte, 1232)
	n, err := a.conn.Read(buf)
	if err != nil {
		a.t.Fatalf("%s: %v", name, err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		a.t.Fatal(err)
	}
	end := 12 + len(q.Question[0].Name) + 1
	if m.Id != a.id || n < end || !bytes.Equal(buf[12:end], raw[12:end]) {
		a.t.Fatalf("reply id %#x question %v to id %#x question %q", m.Id, m.Question, a.id, q.Question[0].Name)
	}
	return m
}

// addresses is the A records of an answer.
func addresses(m *dns.Msg) []string {
	var out []string
	for _, r := range m.Answer {
		if a, ok := r.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// negativeSOA is the SOA of a negative answer.
func negativeSOA(t *testing.T, m *dns.Msg) *dns.SOA {
	t.Helper()
	if len(m.Ns) != 1 {
		t.Fatalf("authority %v, want one SOA", m.Ns)
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	if !ok {
		t.Fatalf("authority %v, want one SOA", m.Ns)
	}
	return soa
}

// TestDNSAnswersFollowAPIChanges caches answers in MCNS's DNS server and
// changes what they answer through the record API, over REST and gRPC:
// the next query must get the new answer, with the query's ID and
// spelling echoed.
func TestDNSAnswersFollowAPIChanges(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	q := newDNSAsker(t, h.dns)
	for transport, a := range transports(t, h, agent) {
		name := "cached-" + transport + "." + zone
		if m := q.ask(name, dns.TypeA); m.Rcode != dns.RcodeNameError {
			t.Fatalf("%s before: %v", transport, m)
		}
		r, got := a.createRecord(ctx, zone, client.RecordFields{Name: "cached-" + transport, Type: "A", Value: "192.0.2.10"})
		if got != ok {
			t.Fatalf("%s create: %s", transport, got)
		}
		if m := q.once(name, dns.TypeA); strings.Join(addresses(m), " ") != "192.0.2.10" {
			t.Fatalf("%s after create: %v", transport, m)
		}
		q.ask(name, dns.TypeA)
		if _, got := a.updateRecord(ctx, zone, r.ID, client.RecordFields{Name: "cached-" + transport, Type: "A", Value: "192.0.2.11"}); got != ok {
			t.Fatalf("%s update: %s", transport, got)
		}
		if m := q.once(name, dns.TypeA); strings.Join(addresses(m), " ") != "192.0.2.11" {
			t.Fatalf("%s after update: %v", transport, m)
		}
		q.ask(name, dns.TypeA)
		if got := a.deleteRecord(ctx, zone, r.ID); got != ok {
			t.Fatalf("%s delete: %s", transport, got)
		}
		if m := q.once(name, dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
			t.Fatalf("%s after delete: %v", transport, m)
		}
	}

	admin := h.client(t, admin)
	missing := "missing." + zone
	before := negativeSOA(t, q.ask(missing, dns.TypeA))
	if _, err := admin.UpdateZone(ctx, zone, client.ZoneFields{Minimum: 42}); err != nil {
		t.Fatal(err)
	}
	after := negativeSOA(t, q.once(missing, dns.TypeA))
	if after.Serial <= before.Serial || after.Minttl != 42 || after.Hdr.Ttl != 42 {
		t.Fatalf("after a zone update: SOA %v, was %v", after, before)
	}

	child := "child." + zone
	if soa := negativeSOA(t, q.ask("www."+child, dns.TypeA)); !strings.EqualFold(soa.Hdr.Name, zone) {
		t.Fatalf("before the child zone: SOA of %s", soa.Hdr.Name)
	}
	if _, err := admin.CreateZone(ctx, child, client.ZoneFields{}); err != nil {
		t.Fatal(err)
	}
	if soa := negativeSOA(t, q.once("www."+child, dns.TypeA)); !strings.EqualFold(soa.Hdr.Name, child) {
		t.Fatalf("after creating the child zone: SOA of %s", soa.Hdr.Name)
	}
	q.ask("www."+child, dns.TypeA)
	if err := admin.DeleteZone(context.Background(), child); err != nil {
		t.Fatal(err)
	}
	if soa := negativeSOA(t, q.once("www."+child, dns.TypeA)); !strings.EqualFold(soa.Hdr.Name, zone) {
		t.Fatalf("after deleting the child zone: SOA of %s", soa.Hdr.Name)
	}
}
