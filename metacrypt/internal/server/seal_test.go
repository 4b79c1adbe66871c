package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
	"git.metacircular.net/metacircular/mcdsl/restclient"
	"git.metacircular.net/metacircular/metacrypt/client"
	"git.metacircular.net/metacircular/metacrypt/internal/server"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// rawCall sends one HTTP request to h's REST listener and returns the
// status, headers and body.
func rawCall(t *testing.T, base, method, path, caller, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+env.tokens[caller])
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig()}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// sealedREST are the REST endpoints of every seal-required RPC.
var sealedREST = [][3]string{
	{"GET", "/v1/sys/mounts", ""},
	{"POST", "/v1/sys/mounts", `{"name":"x","type":"ca"}`},
	{"DELETE", "/v1/sys/mounts/pki", ""},
	{"POST", "/v1/sys/rotate", `{"password":"` + unsealPassword + `"}`},
	{"POST", "/v1/engine/request", `{"mount":"pki","operation":"list"}`},
	{"GET", "/v1/policy/rules", ""},
	{"POST", "/v1/policy/rules", `{"effect":"allow"}`},
	{"PUT", "/v1/policy/rules/1", `{"effect":"allow"}`},
	{"DELETE", "/v1/policy/rules/1", ""},
	{"GET", "/v1/policy/limits", ""},
	{"POST", "/v1/policy/limits", `{"effect":"allow","names":["x.y"]}`},
	{"PUT", "/v1/policy/limits/1", `{"effect":"allow","names":["x.y"]}`},
	{"DELETE", "/v1/policy/limits/1", ""},
	{"POST", "/v1/policy/check", `{"account":"x"}`},
	{"POST", "/v1/pki/pki/root/generate", `{}`},
	{"POST", "/v1/pki/pki/root/import", `{}`},
	{"POST", "/v1/pki/pki/issuers", `{"name":"x"}`},
	{"GET", "/v1/pki/pki/issuers", ""},
	{"GET", "/v1/pki/pki/issuers/services", ""},
	{"PUT", "/v1/pki/pki/issuers/services", `{}`},
	{"POST", "/v1/pki/pki/issue/services", `{"dns_names":["a.svc.mcp.test"]}`},
	{"POST", "/v1/pki/pki/sign/services", `{}`},
	{"POST", "/v1/pki/pki/certs/1/renew", `{}`},
	{"POST", "/v1/pki/pki/certs/1/revoke", `{}`},
	{"GET", "/v1/pki/pki/certs/1", ""},
	{"GET", "/v1/pki/pki/certs", ""},
	{"GET", "/v1/pki/pki/issuers/services/crl", ""},
	{"POST", "/v1/pki/pki/issuers/services/crl/rebuild", ""},
}

// TestSealedAnswersUnavailableEverywhere seals a working Metacrypt and
// checks every seal-required RPC answers Unavailable over gRPC and 503
// over REST, for an admin and for no caller alike (the seal is checked
// before the token), while health, status, unseal and the public CA
// endpoints still answer; then unseals and works again.
func TestSealedAnswersUnavailableEverywhere(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	ag := h.client(t, agent)
	issued, err := ag.Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("mcq")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client(t, admin).Seal(ctx); err != nil {
		t.Fatal(err)
	}

	methods := server.SealRequiredMethods()
	if len(methods) < 25 {
		t.Fatalf("only %d seal-required methods", len(methods))
	}
	for _, m := range methods {
		for _, who := range []string{admin, ""} {
			err := h.conn.Invoke(as(ctx, who), m, &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != codes.Unavailable {
				t.Errorf("gRPC %s as %q while sealed: %v", m, who, err)
			}
		}
	}
	for _, e := range sealedREST {
		for _, who := range []string{admin, ""} {
			code, _, body := rawCall(t, h.rest, e[0], e[1], who, e[2])
			if code != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("sealed")) {
				t.Errorf("REST %s %s as %q while sealed: %d %s", e[0], e[1], who, code, body)
			}
		}
	}
	if _, err := ag.Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("x")}}); client.KindOf(err) != apierr.Unavailable {
		t.Fatalf("client issue while sealed: %v", err)
	}

	// What still answers.
	if code, _, body := rawCall(t, h.rest, "GET", "/v1/health", "", ""); code != http.StatusOK {
		t.Fatalf("health while sealed: %d %s", code, body)
	}
	hc, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health while sealed: %v %v", hc, err)
	}
	var st struct {
		Initialized, Sealed bool
	}
	code, _, body := rawCall(t, h.rest, "GET", "/v1/sys/status", "", "")
	if err := json.Unmarshal(body, &st); code != http.StatusOK || err != nil || !st.Initialized || !st.Sealed {
		t.Fatalf("status while sealed: %d %s", code, body)
	}
	for _, base := range []string{h.rest, h.pki} {
		for _, p := range []string{"/v1/pki/pki/ca", "/v1/pki/pki/ca/chain", "/v1/pki/pki/issuer/services", "/v1/pki/pki/crl/services"} {
			if code, _, body := rawCall(t, base, "GET", p, "", ""); code != http.StatusOK || len(body) == 0 {
				t.Errorf("public %s%s while sealed: %d", base, p, code)
			}
		}
	}
	if _, err := h.client(t, "").Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	got, err := ag.Certificates(ctx, "pki", client.Filter{Name: svcName("mcq")})
	if err != nil || len(got) != 1 || got[0].Serial != issued.Certificate.Serial {
		t.Fatalf("after unseal: %+v %v", got, err)
	}
}

// TestRestartComesUpSealed restarts an unsealed Metacrypt and checks it
// comes back sealed, refuses a wrong password and opens with the right
// one, with its data intact.
func TestRestartComesUpSealed(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	issued, err := h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("mcr")}})
	if err != nil {
		t.Fatal(err)
	}
	h.restart(t)
	s, err := h.client(t, "").Status(ctx)
	if err != nil || !s.Initialized || !s.Sealed || s.KeyVersion != 1 {
		t.Fatalf("after restart: %+v %v", s, err)
	}
	if _, err := h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("x")}}); client.KindOf(err) != apierr.Unavailable {
		t.Fatalf("issue after restart: %v", err)
	}
	if _, err := h.client(t, "").Unseal(ctx, "not the unseal password"); client.KindOf(err) != apierr.Denied {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := h.client(t, "").Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	got, err := h.client(t, admin).Certificate(ctx, "pki", issued.Certificate.Serial)
	if err != nil || got.DNSNames[0] != svcName("mcr") {
		t.Fatalf("after unseal: %+v %v", got, err)
	}
	if _, err := h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("x")}}); err != nil {
		t.Fatalf("issue after unseal: %v", err)
	}
}

// TestUnsealThrottled makes wrong unseal attempts over REST and gRPC and
// checks the throttle answers 429 with Retry-After (ResourceExhausted
// over gRPC), even for the right password, and that status reports the
// wait.
func TestUnsealThrottled(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	if _, err := h.client(t, admin).Seal(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		code, _, body := rawCall(t, h.rest, "POST", "/v1/sys/unseal", "", `{"password":"wrong password `+string(rune('a'+i))+`"}`)
		if code != http.StatusForbidden || !bytes.Contains(body, []byte("wrong unseal password")) {
			t.Fatalf("wrong attempt %d: %d %s", i, code, body)
		}
	}
	code, hdr, body := rawCall(t, h.rest, "POST", "/v1/sys/unseal", "", `{"password":"`+unsealPassword+`"}`)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("throttled REST attempt: %d %v %s", code, hdr, body)
	}
	_, err := h.client(t, "").Unseal(ctx, unsealPassword)
	if status.Code(err) != codes.ResourceExhausted && client.KindOf(err) != apierr.Throttled {
		t.Fatalf("throttled gRPC attempt: %v", err)
	}
	s, err := h.client(t, "").Status(ctx)
	if err != nil || !s.Sealed || s.UnsealRetryAfter <= 0 {
		t.Fatalf("status: %+v %v", s, err)
	}
}

// TestInitAdminOnlyAndOnce checks who may initialize, that bad input
// initializes nothing, and that a second init is a conflict.
func TestInitAdminOnlyAndOnce(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	s, err := h.client(t, "").Status(ctx)
	if err != nil || s.Initialized || !s.Sealed {
		t.Fatalf("fresh status: %+v %v", s, err)
	}
	if _, err := h.client(t, "").Unseal(ctx, unsealPassword); client.KindOf(err) != apierr.Precondition {
		t.Fatalf("unseal before init: %v", err)
	}
	if _, err := h.client(t, alice).Init(ctx, unsealPassword); client.KindOf(err) != apierr.Denied {
		t.Fatalf("init as a user: %v", err)
	}
	if _, err := h.client(t, "").Init(ctx, unsealPassword); client.KindOf(err) != apierr.Unauthenticated {
		t.Fatalf("init without a token: %v", err)
	}
	rc := h.restClient(t, admin)
	err = rc.Do(ctx, http.MethodPost, "/v1/sys/init", map[string]string{"password": "short"}, nil)
	var re *restclient.Error
	if restclient.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "password") {
		t.Fatalf("short password: %v (%T %v)", err, err, re)
	}
	if s, _ := h.client(t, "").Status(ctx); s.Initialized {
		t.Fatal("a refused init initialized")
	}
	if err := rc.Do(ctx, http.MethodPost, "/v1/sys/init", map[string]string{"password": unsealPassword}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client(t, admin).Init(ctx, unsealPassword); client.KindOf(err) != apierr.Conflict {
		t.Fatalf("second init: %v", err)
	}
	if s, _ := h.client(t, "").Status(ctx); !s.Initialized || s.Sealed {
		t.Fatalf("after init: %+v", s)
	}
}

// TestRowSwapDetectedInService swaps the encrypted rows of two issuers'
// keys in the running service's database: neither issuer can sign until
// they are swapped back, and the caller sees an internal error, not a
// certificate.
func TestRowSwapDetectedInService(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	st, err := store.Open(ctx, h.cfg.Database.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	swap := func() {
		t.Helper()
		var a, b []byte
		q := `SELECT value FROM secrets WHERE kind = 'ca' AND key = ?`
		if err := st.DB().QueryRowContext(ctx, q, "infra").Scan(&a); err != nil {
			t.Fatal(err)
		}
		if err := st.DB().QueryRowContext(ctx, q, "services").Scan(&b); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string][]byte{"infra": b, "services": a} {
			if _, err := st.DB().ExecContext(ctx, `UPDATE secrets SET value = ? WHERE kind = 'ca' AND key = ?`, v, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	swap()
	_, err = h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("a")}})
	if client.KindOf(err) != apierr.Internal {
		t.Fatalf("issue from a swapped row: %v", err)
	}
	if !strings.Contains(h.logs.String(), "does not decrypt") {
		t.Fatal("the tampering is not in the log")
	}
	swap()
	if _, err := h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("a")}}); err != nil {
		t.Fatalf("after swapping back: %v", err)
	}
}

// TestSnapshotRestore takes a snapshot over the admin RPC, starts a new
// Metacrypt on it (as the runbook's restore does), and checks it comes up
// sealed, opens with the unseal password, and holds the CA and its
// certificates; the snapshot holds no secret in the clear.
func TestSnapshotRestore(t *testing.T) {
	ctx := t.Context()
	h := start(t)
	h.ready(t, false)
	is, err := h.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("backup")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mcdslv1.NewSnapshotServiceClient(h.conn).Snapshot(as(ctx, agent), &mcdslv1.SnapshotRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("snapshot as the agent: %v", err)
	}
	snap, err := mcdslv1.NewSnapshotServiceClient(h.conn).Snapshot(as(ctx, admin), &mcdslv1.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(snap.GetPath())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte(`"key":`)) {
		t.Fatal("the snapshot holds key material in the clear")
	}
	r := startFrom(t, snap.GetPath())
	s, err := r.client(t, "").Status(ctx)
	if err != nil || !s.Initialized || !s.Sealed {
		t.Fatalf("restored status: %+v %v", s, err)
	}
	if _, err := r.client(t, "").Unseal(ctx, unsealPassword); err != nil {
		t.Fatal(err)
	}
	got, err := r.client(t, agent).Certificate(ctx, "pki", is.Certificate.Serial)
	if err != nil || got.Serial != is.Certificate.Serial {
		t.Fatalf("restored certificate: %+v %v", got, err)
	}
	if _, err := r.client(t, agent).Issue(ctx, "pki", client.IssueRequest{Issuer: "services", DNSNames: []string{svcName("after")}}); err != nil {
		t.Fatalf("issue after restore: %v", err)
	}
}
