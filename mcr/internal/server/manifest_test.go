package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestSparseRefused: by default a manifest whose layers the repository
// lacks is refused with MANIFEST_BLOB_UNKNOWN naming them, and nothing is
// stored; a bad manifest or a digest that does not match is a spec error.
func TestSparseRefused(t *testing.T) {
	h := start(t, options{})
	c := h.client(alice)
	img := newImage("sparse")
	c.pushBlob(t, "team/app", img.config)
	r := c.do(t, http.MethodPut, "/v2/team/app/manifests/v1", http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, img.manifest)
	if r.status != http.StatusBadRequest || r.errCode() != "MANIFEST_BLOB_UNKNOWN" || !strings.Contains(string(r.body), "sha256:") {
		t.Fatalf("sparse push: %d %s", r.status, r.body)
	}
	if r := c.do(t, http.MethodGet, "/v2/team/app/manifests/v1", nil, nil); r.status != http.StatusNotFound || r.errCode() != "MANIFEST_UNKNOWN" {
		t.Fatalf("refused manifest stored: %d %s", r.status, r.body)
	}
	for _, bad := range []struct{ ref, ct, body, code string }{
		{"v1", "application/vnd.oci.image.manifest.v1+json", `{"schemaVersion":2`, "MANIFEST_INVALID"},
		{"sha256:" + strings.Repeat("0", 64), "application/vnd.oci.image.manifest.v1+json", string(img.manifest), "DIGEST_INVALID"},
		{"bad tag!", "application/vnd.oci.image.manifest.v1+json", string(img.manifest), "MANIFEST_INVALID"},
	} {
		r := c.do(t, http.MethodPut, "/v2/team/app/manifests/"+bad.ref, http.Header{"Content-Type": {bad.ct}}, []byte(bad.body))
		if r.status != http.StatusBadRequest || r.errCode() != bad.code {
			t.Errorf("PUT %s: %d %s, want 400 %s", bad.ref, r.status, r.body, bad.code)
		}
	}
	// Tag listing pagination with Link.
	c.pushBlob(t, "team/app", img.layer)
	for _, tag := range []string{"a", "b", "c"} {
		if r := c.do(t, http.MethodPut, "/v2/team/app/manifests/"+tag, http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, img.manifest); r.status != http.StatusCreated {
			t.Fatal(r.status)
		}
	}
	r = c.do(t, http.MethodGet, "/v2/team/app/tags/list?n=2", nil, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"tags":["a","b"]`) || !strings.Contains(r.header.Get("Link"), "last=b") {
		t.Fatalf("page 1: %s %v", r.body, r.header.Get("Link"))
	}
	r = c.do(t, http.MethodGet, "/v2/team/app/tags/list?n=2&last=b", nil, nil)
	if !strings.Contains(string(r.body), `"tags":["c"]`) || r.header.Get("Link") != "" {
		t.Fatalf("page 2: %s %v", r.body, r.header.Get("Link"))
	}
	if r := c.do(t, http.MethodGet, "/v2/team/nothere/tags/list", nil, nil); r.status != http.StatusNotFound || r.errCode() != "NAME_UNKNOWN" {
		t.Fatalf("unknown repository: %d %s", r.status, r.body)
	}
}
