package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
	"git.metacircular.net/metacircular/mcdsl/restclient"
	"git.metacircular.net/metacircular/mcns/client"
	mcnsv1 "git.metacircular.net/metacircular/mcns/gen/mcns/v1"
)

// outcome is a transport-neutral answer, so one table checks both APIs.
type outcome string

const (
	ok           outcome = "ok"
	invalid      outcome = "invalid"       // 400 / InvalidArgument
	unauth       outcome = "unauth"        // 401 / Unauthenticated
	forbidden    outcome = "forbidden"     // 403 / PermissionDenied
	notFound     outcome = "not found"     // 404 / NotFound
	conflict     outcome = "conflict"      // 409 / AlreadyExists
	otherFailure outcome = "other failure" // anything else
)

func restOutcome(err error) outcome {
	if err == nil {
		return ok
	}
	switch restclient.StatusOf(err) {
	case http.StatusBadRequest:
		return invalid
	case http.StatusUnauthorized:
		return unauth
	case http.StatusForbidden:
		return forbidden
	case http.StatusNotFound:
		return notFound
	case http.StatusConflict:
		return conflict
	}
	return otherFailure
}

func grpcOutcome(err error) outcome {
	if err == nil {
		return ok
	}
	switch status.Code(err) {
	case codes.InvalidArgument:
		return invalid
	case codes.Unauthenticated:
		return unauth
	case codes.PermissionDenied:
		return forbidden
	case codes.NotFound:
		return notFound
	case codes.AlreadyExists:
		return conflict
	}
	return otherFailure
}

// api is the record API as one caller sees it, over REST or gRPC.
type api interface {
	listZones(ctx context.Context) outcome
	createZone(ctx context.Context, name string) outcome
	deleteZone(ctx context.Context, name string) outcome
	listRecords(ctx context.Context, zone string) ([]client.Record, outcome)
	createRecord(ctx context.Context, zone string, f client.RecordFields) (client.Record, outcome)
	getRecord(ctx context.Context, zone string, id int64) (client.Record, outcome)
	updateRecord(ctx context.Context, zone string, id int64, f client.RecordFields) (client.Record, outcome)
	deleteRecord(ctx context.Context, zone string, id int64) outcome
}

type restAPI struct{ c *restClient }

func (a restAPI) listZones(ctx context.Context) outcome {
	_, err := a.c.ListZones(ctx)
	return restOutcome(err)
}

func (a restAPI) createZone(ctx context.Context, name string) outcome {
	_, err := a.c.CreateZone(ctx, name, client.ZoneFields{})
	return restOutcome(err)
}

func (a restAPI) deleteZone(ctx context.Context, name string) outcome {
	return restOutcome(a.c.DeleteZone(ctx, name))
}

func (a restAPI) listRecords(ctx context.Context, zone string) ([]client.Record, outcome) {
	l, err := a.c.ListRecords(ctx, zone, client.Filter{})
	return l, restOutcome(err)
}

func (a restAPI) createRecord(ctx context.Context, zone string, f client.RecordFields) (client.Record, outcome) {
	r, err := a.c.CreateRecord(ctx, zone, f)
	return r, restOutcome(err)
}

func (a restAPI) getRecord(ctx context.Context, zone string, id int64) (client.Record, outcome) {
	r, err := a.c.GetRecord(ctx, zone, id)
	return r, restOutcome(err)
}

func (a restAPI) updateRecord(ctx context.Context, zone string, id int64, f client.RecordFields) (client.Record, outcome) {
	r, err := a.c.UpdateRecord(ctx, zone, id, f)
	return r, restOutcome(err)
}

func (a restAPI) deleteRecord(ctx context.Context, zone string, id int64) outcome {
	return restOutcome(a.c.DeleteRecord(ctx, zone, id))
}

type grpcAPI struct {
	h      *harness
	caller string
}

func (a grpcAPI) listZones(ctx context.Context) outcome {
	_, err := a.h.zones().ListZones(as(ctx, a.caller), &mcnsv1.ListZonesRequest{})
	return grpcOutcome(err)
}

func (a grpcAPI) createZone(ctx context.Context, name string) outcome {
	_, err := a.h.zones().CreateZone(as(ctx, a.caller), &mcnsv1.CreateZoneRequest{Name: name})
	return grpcOutcome(err)
}

func (a grpcAPI) deleteZone(ctx context.Context, name string) outcome {
	_, err := a.h.zones().DeleteZone(as(ctx, a.caller), &mcnsv1.DeleteZoneRequest{Name: name})
	return grpcOutcome(err)
}

func fromPB(r *mcnsv1.Record) client.Record {
	return client.Record{ID: r.GetId(), Zone: r.GetZone(), Name: r.GetName(), Type: r.GetType(), TTL: r.GetTtl(), Value: r.GetValue()}
}

func toPB(f client.RecordFields) *mcnsv1.RecordFields {
	return &mcnsv1.RecordFields{Name: f.Name, Type: f.Type, Ttl: f.TTL, Value: f.Value}
}

func (a grpcAPI) listRecords(ctx context.Context, zone string) ([]client.Record, outcome) {
	resp, err := a.h.records().ListRecords(as(ctx, a.caller), &mcnsv1.ListRecordsRequest{Zone: zone})
	var out []client.Record
	for _, r := range resp.GetRecords() {
		out = append(out, fromPB(r))
	}
	return out, grpcOutcome(err)
}

func (a grpcAPI) createRecord(ctx context.Context, zone string, f client.RecordFields) (client.Record, outcome) {
	resp, err := a.h.records().CreateRecord(as(ctx, a.caller), &mcnsv1.CreateRecordRequest{Zone: zone, Record: toPB(f)})
	return fromPB(resp.GetRecord()), grpcOutcome(err)
}

func (a grpcAPI) getRecord(ctx context.Context, zone string, id int64) (client.Record, outcome) {
	resp, err := a.h.records().GetRecord(as(ctx, a.caller), &mcnsv1.GetRecordRequest{Zone: zone, Id: id})
	return fromPB(resp.GetRecord()), grpcOutcome(err)
}

func (a grpcAPI) updateRecord(ctx context.Context, zone string, id int64, f client.RecordFields) (client.Record, outcome) {
	resp, err := a.h.records().UpdateRecord(as(ctx, a.caller), &mcnsv1.UpdateRecordRequest{Zone: zone, Id: id, Record: toPB(f)})
	return fromPB(resp.GetRecord()), grpcOutcome(err)
}

func (a grpcAPI) deleteRecord(ctx context.Context, zone string, id int64) outcome {
	_, err := a.h.records().DeleteRecord(as(ctx, a.caller), &mcnsv1.DeleteRecordRequest{Zone: zone, Id: id})
	return grpcOutcome(err)
}

// transports returns the API of caller ("" for no token) over each
// transport.
func transports(t *testing.T, h *harness, caller string) map[string]api {
	return map[string]api{"rest": restAPI{h.client(t, caller)}, "grpc": grpcAPI{h: h, caller: caller}}
}

// mayWrite is the authorization rule under test, written out
// independently of the implementation: may caller write a record named
// name (relative to zone)?
func mayWrite(caller, name string) bool {
	switch caller {
	case admin, agent:
		return true
	case mcq, mcr:
		return name == caller
	}
	return false
}

// TestAuthorizationMatrix runs every caller against zone creation and
// record create/update/delete on its own name and on another account's
// name, over REST and over gRPC, against a real MCIAS. Refused writes must
// leave the record and the zone serial as they were.
func TestAuthorizationMatrix(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	adminAPI := restAPI{h.client(t, admin)}
	for _, transport := range []string{"rest", "grpc"} {
		for _, caller := range []string{admin, agent, mcq, mcr, alice, gina} {
			t.Run(transport+"/"+caller, func(t *testing.T) {
				a := transports(t, h, caller)[transport]
				if got := a.listZones(ctx); got != ok {
					t.Errorf("list zones: %s", got)
				}
				if _, got := a.listRecords(ctx, zone); got != ok {
					t.Errorf("list records: %s", got)
				}
				newZone := fmt.Sprintf("%s-%s.test", transport, caller)
				wantZone := forbidden
				if caller == admin {
					wantZone = ok
				}
				if got := a.createZone(ctx, newZone); got != wantZone {
					t.Errorf("create zone: %s; want %s", got, wantZone)
				}
				if caller != admin {
					if got := a.deleteZone(ctx, nodeZone); got != forbidden {
						t.Errorf("delete zone: %s; want forbidden", got)
					}
				}

				other := mcq
				if caller == mcq {
					other = mcr
				}
				for _, name := range []string{caller, other} {
					checkWrites(t, h, a, adminAPI, caller, name)
				}
			})
		}
	}
	for _, transport := range []string{"rest", "grpc"} {
		a := transports(t, h, "")[transport]
		if got := a.listZones(ctx); got != unauth {
			t.Errorf("%s: list zones without a token: %s", transport, got)
		}
		if _, got := a.createRecord(ctx, zone, client.RecordFields{Name: "x", Type: "A", Value: "192.0.2.1"}); got != unauth {
			t.Errorf("%s: create without a token: %s", transport, got)
		}
	}
	bogus, err := newRESTClient(h.rest, env.ca.CertPath(), "not-a-token")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bogus.ListZones(ctx); restclient.StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("list zones with a bogus token: %v", err)
	}
}

// checkWrites has caller create, update and delete a record named name in
// zone and checks each answer against mayWrite; the fixtures are the
// admin's. A refused write must change nothing.
func checkWrites(t *testing.T, h *harness, a, adminAPI api, caller, name string) {
	t.Helper()
	ctx := t.Context()
	want := forbidden
	if mayWrite(caller, name) {
		want = ok
	}
	fqdn := name + "." + zone
	before := h.serial(t, zone)
	created, got := a.createRecord(ctx, zone, client.RecordFields{Name: name, Type: "TXT", Value: "by " + caller})
	if got != want {
		t.Errorf("create %s: %s; want %s", fqdn, got, want)
	}
	if got == ok {
		if created.Name != fqdn {
			t.Errorf("created %+v; want name %s", created, fqdn)
		}
		if got := adminAPI.deleteRecord(ctx, zone, created.ID); got != ok {
			t.Fatalf("cleanup: %s", got)
		}
	}

	fixture, got := adminAPI.createRecord(ctx, zone, client.RecordFields{Name: name, Type: "A", Value: "192.0.2.1"})
	if got != ok {
		t.Fatalf("fixture %s: %s", fqdn, got)
	}
	serial := h.serial(t, zone)
	if _, got := a.updateRecord(ctx, zone, fixture.ID, client.RecordFields{Name: name, Type: "A", Value: "192.0.2.2"}); got != want {
		t.Errorf("update %s: %s; want %s", fqdn, got, want)
	}
	// Moving a record away from one's own name is moving it to another
	// account's name: only admins and agents may.
	elsewhere := "elsewhere-" + caller
	wantMove := forbidden
	if mayWrite(caller, elsewhere) && mayWrite(caller, name) {
		wantMove = ok
	}
	if _, got := a.updateRecord(ctx, zone, fixture.ID, client.RecordFields{Name: elsewhere, Type: "A", Value: "192.0.2.3"}); got != wantMove {
		t.Errorf("move %s to %s: %s; want %s", fqdn, elsewhere, got, wantMove)
	}
	if want != ok {
		if r, got := adminAPI.getRecord(ctx, zone, fixture.ID); got != ok || r.Value != "192.0.2.1" || r.Name != fqdn {
			t.Errorf("record after refused updates: %+v %s; want it unchanged", r, got)
		}
		if s := h.serial(t, zone); s != serial {
			t.Errorf("serial %d after refused updates; want %d", s, serial)
		}
	}
	if got := a.deleteRecord(ctx, zone, fixture.ID); got != want {
		t.Errorf("delete %s: %s; want %s", fqdn, got, want)
	}
	_, got = adminAPI.getRecord(ctx, zone, fixture.ID)
	if want == ok && got != notFound {
		t.Errorf("record after delete: %s; want not found", got)
	}
	if want != ok {
		if got != ok {
			t.Errorf("record after refused delete: %s; want it still there", got)
		}
		if got := adminAPI.deleteRecord(ctx, zone, fixture.ID); got != ok {
			t.Fatalf("cleanup: %s", got)
		}
	}
	if after := h.serial(t, zone); after <= before {
		t.Errorf("serial %d did not move past %d over the fixture's changes", after, before)
	}
}

// TestSerialBumpsOnEveryChange checks that each change through the API,
// over either transport, increases the zone's serial.
func TestSerialBumpsOnEveryChange(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	last := h.serial(t, zone)
	bumped := func(what string) {
		t.Helper()
		s := h.serial(t, zone)
		if s <= last {
			t.Errorf("%s: serial %d did not increase past %d", what, s, last)
		}
		last = s
	}
	for transport, a := range transports(t, h, agent) {
		r, got := a.createRecord(ctx, zone, client.RecordFields{Name: "web-" + transport, Type: "A", Value: "192.0.2.10"})
		if got != ok {
			t.Fatalf("%s create: %s", transport, got)
		}
		bumped(transport + " create")
		if _, got := a.updateRecord(ctx, zone, r.ID, client.RecordFields{Name: "web-" + transport, Type: "A", TTL: 60, Value: "192.0.2.11"}); got != ok {
			t.Fatalf("%s update: %s", transport, got)
		}
		bumped(transport + " update")
		if got := a.deleteRecord(ctx, zone, r.ID); got != ok {
			t.Fatalf("%s delete: %s", transport, got)
		}
		bumped(transport + " delete")
	}
	if _, err := h.client(t, admin).UpdateZone(ctx, zone, client.ZoneFields{TTL: 120}); err != nil {
		t.Fatal(err)
	}
	bumped("zone update")
	if _, err := h.zones().UpdateZone(as(ctx, admin), &mcnsv1.UpdateZoneRequest{Name: zone, Fields: &mcnsv1.ZoneFields{Ttl: 90}}); err != nil {
		t.Fatal(err)
	}
	bumped("zone update over gRPC")
	z, err := h.client(t, gina).GetZone(ctx, "SVC.mcp.test")
	if err != nil || z.TTL != 90 || z.PrimaryNS != "mcns.svc.mcp.test." || z.AdminEmail != "hostmaster.mcp.test." {
		t.Errorf("zone after updates: %+v %v", z, err)
	}
}

// TestInvalidInputChangesNothing sends bad input over both transports and
// checks the answer names the problem and nothing was written.
func TestInvalidInputChangesNothing(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	agentREST := h.client(t, agent)
	fixture, err := agentREST.CreateRecord(ctx, zone, client.RecordFields{Name: "keep", Type: "A", Value: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	serial := h.serial(t, zone)
	bad := []struct {
		f       client.RecordFields
		mention string
	}{
		{client.RecordFields{Name: "a", Type: "A", Value: "not-an-address"}, "value"},
		{client.RecordFields{Name: "a", Type: "A", Value: "2001:db8::1"}, "value"},
		{client.RecordFields{Name: "a", Type: "WKS", Value: "x"}, "type"},
		{client.RecordFields{Name: "a.elsewhere.test.", Type: "A", Value: "192.0.2.1"}, "name"},
		{client.RecordFields{Name: "bad name", Type: "A", Value: "192.0.2.1"}, "name"},
		{client.RecordFields{Name: "a", Type: "A", TTL: 1 << 30, Value: "192.0.2.1"}, "ttl"},
		{client.RecordFields{Name: "@", Type: "CNAME", Value: "x.test."}, "name"},
	}
	for transport, a := range transports(t, h, agent) {
		for _, b := range bad {
			if _, got := a.createRecord(ctx, zone, b.f); got != invalid {
				t.Errorf("%s create %+v: %s; want invalid", transport, b.f, got)
			}
			if _, got := a.updateRecord(ctx, zone, fixture.ID, b.f); got != invalid {
				t.Errorf("%s update %+v: %s; want invalid", transport, b.f, got)
			}
		}
		if _, got := a.createRecord(ctx, zone, client.RecordFields{Name: "keep", Type: "CNAME", Value: "x.test."}); got != conflict {
			t.Errorf("%s CNAME beside A: %s; want conflict", transport, got)
		}
		if _, got := a.createRecord(ctx, zone, client.RecordFields{Name: "keep", Type: "A", Value: "192.0.2.1"}); got != conflict {
			t.Errorf("%s duplicate record: %s; want conflict", transport, got)
		}
		if _, got := a.createRecord(ctx, "nowhere.test", client.RecordFields{Name: "a", Type: "A", Value: "192.0.2.1"}); got != notFound {
			t.Errorf("%s record in a missing zone: %s; want not found", transport, got)
		}
		if _, got := a.getRecord(ctx, zone, 999999); got != notFound {
			t.Errorf("%s missing record: %s; want not found", transport, got)
		}
		if _, got := a.getRecord(ctx, zone, -1); got != invalid {
			t.Errorf("%s negative id: %s; want invalid", transport, got)
		}
	}
	// The REST messages name the field.
	for _, b := range bad {
		_, err := agentREST.CreateRecord(ctx, zone, b.f)
		if err == nil || !strings.Contains(err.Error(), b.mention) {
			t.Errorf("create %+v: %v; want a message naming %s", b.f, err, b.mention)
		}
	}
	// Strict JSON and bad paths, over raw HTTP.
	records := "/v1/zones/" + zone + "/records"
	for _, c := range []struct{ caller, method, path, body, mention string }{
		{agent, http.MethodPost, records, `{"name":"a","type":"A","value":"192.0.2.5","color":"red"}`, "unknown field"},
		{agent, http.MethodPost, records, `{"name":"a","type":"A","value":"192.0.2.5"} {}`, "trailing data"},
		{agent, http.MethodPost, records, `{"name":"a","type":"A","ttl":-1,"value":"192.0.2.5"}`, "request body"},
		{agent, http.MethodPost, records, `not json`, "request body"},
		{agent, http.MethodPut, records + "/abc", `{"name":"a","type":"A","value":"192.0.2.5"}`, "id"},
		{agent, http.MethodGet, records + "?color=red", "", "color"},
		{admin, http.MethodPost, "/v1/zones", `{"name":"x.test","serial":5}`, "unknown field"},
		{admin, http.MethodPost, "/v1/zones", `{"name":"bad_zone..test"}`, "zone"},
		{admin, http.MethodPut, "/v1/zones/" + zone, `{"name":"other.test"}`, "name"},
		{admin, http.MethodPut, "/v1/zones/" + zone, `{"refresh":99999999}`, "refresh"},
	} {
		code, msg := rawREST(t, h, c.method, c.path, c.caller, c.body)
		if code != http.StatusBadRequest || !strings.Contains(msg, c.mention) {
			t.Errorf("%s %s %s = %d %q; want 400 mentioning %q", c.method, c.path, c.body, code, msg, c.mention)
		}
	}
	if s := h.serial(t, zone); s != serial {
		t.Errorf("serial %d after refused changes; want %d", s, serial)
	}
	list, err := agentREST.ListRecords(ctx, zone, client.Filter{})
	if err != nil || len(list) != 1 || list[0].ID != fixture.ID || list[0].Value != "192.0.2.1" {
		t.Errorf("records after refused changes: %+v %v; want only the fixture, unchanged", list, err)
	}
	zones, err := agentREST.ListZones(ctx)
	if err != nil || len(zones) != 2 {
		t.Errorf("zones after refused changes: %+v %v", zones, err)
	}
}

// rawREST sends one request as caller and returns the status and the
// error message.
func rawREST(t *testing.T, h *harness, method, path, caller, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, h.rest+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+env.tokens[caller])
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig()}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s %s: answer is not a JSON error body: %v", method, path, err)
	}
	return resp.StatusCode, e.Error
}

// TestConcurrentWriters has several callers write at once over both
// transports: every write lands, and the serial counts every change.
func TestConcurrentWriters(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	before := h.serial(t, zone)
	const writers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := transports(t, h, agent)[[]string{"rest", "grpc"}[w%2]]
			for i := range each {
				name := fmt.Sprintf("host-%d-%d", w, i)
				if _, got := a.createRecord(ctx, zone, client.RecordFields{Name: name, Type: "A", Value: fmt.Sprintf("10.0.%d.%d", w, i)}); got != ok {
					errs <- fmt.Errorf("create %s: %s", name, got)
				}
			}
		}()
	}
	// mcq writes its own name meanwhile.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := h.client(t, mcq)
		for i := range each {
			if _, err := c.CreateRecord(ctx, zone, client.RecordFields{Name: mcq, Type: "TXT", Value: fmt.Sprintf("v%d", i)}); err != nil {
				errs <- fmt.Errorf("mcq create %d: %w", i, err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := h.client(t, alice).ListRecords(ctx, zone, client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int64]bool{}
	for _, r := range list {
		ids[r.ID] = true
	}
	if total := (writers + 1) * each; len(list) != total || len(ids) != total {
		t.Errorf("%d records (%d distinct ids) after concurrent writes; want %d", len(list), len(ids), total)
	}
	if after := h.serial(t, zone); after-before < uint32((writers+1)*each) {
		t.Errorf("serial went from %d to %d over %d changes", before, after, (writers+1)*each)
	}
}

// TestSnapshotIsAdminOnly checks the interceptor's admin map.
func TestSnapshotIsAdminOnly(t *testing.T) {
	h := start(t)
	snap := mcdslv1.NewSnapshotServiceClient(h.conn)
	if _, err := snap.Snapshot(as(t.Context(), agent), &mcdslv1.SnapshotRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("snapshot as mcp-agent: %v; want PermissionDenied", err)
	}
	resp, err := snap.Snapshot(as(t.Context(), admin), &mcdslv1.SnapshotRequest{})
	if err != nil || !strings.Contains(resp.GetPath(), "mcns-") || resp.GetSizeBytes() == 0 {
		t.Errorf("snapshot as admin: %+v %v", resp, err)
	}
}
