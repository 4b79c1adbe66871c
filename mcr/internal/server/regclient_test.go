package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// regClient speaks the distribution API as a Docker client does: on a 401
// it follows the Bearer challenge to the token endpoint with the user's
// password (or none for anonymous), caches the token per scope and
// retries once.
type regClient struct {
	h    *harness
	user string
	mu   sync.Mutex
	toks map[string]string
}

func (h *harness) client(user string) *regClient {
	return &regClient{h: h, user: user, toks: map[string]string{}}
}

var challengeRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errCode is the first error code of a spec error body.
func (r response) errCode() string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func (c *regClient) do(t testing.TB, method, path string, hdr http.Header, body []byte) response {
	t.Helper()
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequest(method, c.h.base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		c.mu.Lock()
		tok := c.toks[method+" "+path]
		if tok == "" {
			tok = c.toks["last"]
		}
		c.mu.Unlock()
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header, body: data}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return r
		}
		ch := resp.Header.Get("WWW-Authenticate")
		params := map[string]string{}
		for _, m := range challengeRE.FindAllStringSubmatch(ch, -1) {
			params[m[1]] = m[2]
		}
		q := url.Values{"service": {params["service"]}}
		if params["scope"] != "" {
			q.Set("scope", params["scope"])
		}
		treq, _ := http.NewRequest(http.MethodGet, params["realm"]+"?"+q.Encode(), nil)
		if c.user != "" {
			treq.SetBasicAuth(c.user, env.passwords[c.user])
		}
		tresp, err := httpClient().Do(treq)
		if err != nil {
			t.Fatal(err)
		}
		var tr struct {
			Token string `json:"token"`
		}
		tdata, _ := io.ReadAll(tresp.Body)
		_ = tresp.Body.Close()
		if tresp.StatusCode != http.StatusOK || json.Unmarshal(tdata, &tr) != nil {
			return response{status: tresp.StatusCode, header: tresp.Header, body: tdata}
		}
		c.mu.Lock()
		c.toks[method+" "+path] = tr.Token
		c.mu.Unlock()
	}
}

// pushBlob uploads b to repo monolithically (POST then PUT).
func (c *regClient) pushBlob(t testing.TB, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	r := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST upload %s as %s: %d %s", repo, c.user, r.status, r.body)
	}
	loc := r.header.Get("Location")
	r = c.do(t, http.MethodPut, loc+"?digest="+d.String(), http.Header{"Content-Type": {"application/octet-stream"}}, b)
	if r.status != http.StatusCreated {
		t.Fatalf("PUT blob %s: %d %s", repo, r.status, r.body)
	}
	return d
}

// image is a minimal OCI image: a config and one layer.
type image struct {
	config, layer, manifest []byte
	digest                  digest.Digest
}

func newImage(seed string) image {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":%q}`, seed))
	layer := []byte(strings.Repeat("layer "+seed+"\n", 200))
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		digest.FromBytes(cfg), len(cfg), digest.FromBytes(layer), len(layer))
	return image{config: cfg, layer: layer, manifest: []byte(m), digest: digest.FromString(m)}
}

// pushImage pushes img to repo:tag.
func (c *regClient) pushImage(t testing.TB, repo, tag string, img image) {
	t.Helper()
	c.pushBlob(t, repo, img.config)
	c.pushBlob(t, repo, img.layer)
	r := c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+tag,
		http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, img.manifest)
	if r.status != http.StatusCreated {
		t.Fatalf("PUT manifest %s:%s: %d %s", repo, tag, r.status, r.body)
	}
}

// pullImage pulls repo:tag and checks every digest; it returns the
// manifest digest.
func (c *regClient) pullImage(t testing.TB, repo, tag string) (digest.Digest, error) {
	r := c.do(t, http.MethodGet, "/v2/"+repo+"/manifests/"+tag, http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json"}}, nil)
	if r.status != http.StatusOK {
		return "", fmt.Errorf("GET manifest %s:%s: %d %s", repo, tag, r.status, r.body)
	}
	md := digest.FromBytes(r.body)
	if h := r.header.Get("Docker-Content-Digest"); h != md.String() {
		return "", fmt.Errorf("manifest digest header %s, content %s", h, md)
	}
	var m struct {
		Config struct{ Digest digest.Digest }   `json:"config"`
		Layers []struct{ Digest digest.Digest } `json:"layers"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		return "", err
	}
	for _, d := range append([]digest.Digest{m.Config.Digest}, func() []digest.Digest {
		var l []digest.Digest
		for _, x := range m.Layers {
			l = append(l, x.Digest)
		}
		return l
	}()...) {
		b := c.do(t, http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil, nil)
		if b.status != http.StatusOK {
			return "", fmt.Errorf("GET blob %s of %s:%s: %d %s", d, repo, tag, b.status, b.body)
		}
		if digest.FromBytes(b.body) != d {
			return "", fmt.Errorf("blob %s of %s:%s has the wrong content", d, repo, tag)
		}
	}
	return md, nil
}

// agentClient authenticates as mcp-agent with its MCIAS token as the
// password (system accounts have no password).
func (h *harness) agentClient() *regClient {
	c := h.client(agent)
	return c
}
