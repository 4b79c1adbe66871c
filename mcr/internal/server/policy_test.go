package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestPolicyMatrix drives the token flow over HTTP for each kind of
// caller: no token, a token for another repository, a read-only role, the
// mcp-agent system account, an anonymous pull of a public repository.
func TestPolicyMatrix(t *testing.T) {
	h := start(t, options{})
	alicec := h.client(alice)
	alicec.pushImage(t, "team/app", "v1", newImage("matrix"))
	h.client(admin).pushImage(t, "public/base", "v1", newImage("public"))

	// No token at all: 401 with a challenge naming the scope.
	r, err := http.NewRequest(http.MethodGet, h.base+"/v2/team/app/manifests/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `Bearer realm="`+h.base+`/v2/token"`) ||
		!strings.Contains(ch, `scope="repository:team/app:pull"`) {
		t.Fatalf("no token: %d %q", resp.StatusCode, ch)
	}

	// A token for another repository: a 401 asking for the right scope
	// when the caller may have it...
	tok := h.token(t, alice, "repository:alice/x:pull")
	req, _ := http.NewRequest(http.MethodGet, h.base+"/v2/team/app/manifests/v1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("wrong-repository token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// ... and DENIED when it may not (gina, a guest, has no rule).
	tok = h.token(t, gina, "repository:team/app:pull")
	req, _ = http.NewRequest(http.MethodGet, h.base+"/v2/team/app/manifests/v1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("guest pull: %d", resp.StatusCode)
	}

	cases := []struct {
		who, method, repo string
		want              int
		code              string
	}{
		{bob, http.MethodGet, "team/app", http.StatusOK, ""},
		{bob, http.MethodPut, "team/app", http.StatusForbidden, "DENIED"},
		{bob, http.MethodDelete, "team/app", http.StatusForbidden, "DENIED"},
		{agent, http.MethodGet, "team/app", http.StatusOK, ""},
		{agent, http.MethodPut, "team/app", http.StatusForbidden, "DENIED"},
		{gina, http.MethodGet, "team/app", http.StatusForbidden, "DENIED"},
		{"", http.MethodGet, "team/app", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"", http.MethodGet, "public/base", http.StatusOK, ""},
		{"", http.MethodPut, "public/base", http.StatusUnauthorized, "UNAUTHORIZED"},
		{admin, http.MethodGet, "team/app", http.StatusOK, ""},
	}
	img := newImage("matrix")
	for _, c := range cases {
		var cl *regClient
		if c.who == agent {
			cl = h.agentClient()
		} else {
			cl = h.client(c.who)
		}
		var got response
		switch c.method {
		case http.MethodGet:
			got = cl.do(t, http.MethodGet, "/v2/"+c.repo+"/manifests/v1", nil, nil)
		case http.MethodPut:
			got = cl.do(t, http.MethodPut, "/v2/"+c.repo+"/manifests/v2", http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, img.manifest)
		case http.MethodDelete:
			got = cl.do(t, http.MethodDelete, "/v2/"+c.repo+"/manifests/v1", nil, nil)
		}
		if got.status != c.want || (c.code != "" && got.errCode() != c.code) {
			t.Errorf("%q %s %s: %d %s, want %d %s", c.who, c.method, c.repo, got.status, got.body, c.want, c.code)
		}
	}

	// Bad credentials at the token endpoint: 401 in JSON, never HTML.
	req, _ = http.NewRequest(http.MethodGet, h.base+"/v2/token?service=127.0.0.1&scope=repository:team/app:pull", nil)
	req.SetBasicAuth(alice, "wrong")
	resp, err = httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("bad password: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The catalog is for admins.
	if r := h.client(alice).do(t, http.MethodGet, "/v2/_catalog", nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("alice catalog: %d", r.status)
	}
	if r := h.client(admin).do(t, http.MethodGet, "/v2/_catalog?n=1", nil, nil); r.status != http.StatusOK ||
		!strings.Contains(r.header.Get("Link"), "rel=\"next\"") {
		t.Fatalf("admin catalog: %d %s %v", r.status, r.body, r.header)
	}
	// Unknown paths answer JSON.
	for _, p := range []string{"/v2/nope", "/nope", "/v2/token/x"} {
		resp, err := httpClient().Get(h.base + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
