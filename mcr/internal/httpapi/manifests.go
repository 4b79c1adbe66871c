package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcr/internal/manifest"
	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// maxTagParams bounds the tag= parameters of one manifest push (the spec
// asks for at least 10).
const maxTagParams = 100

// reference is a manifest reference from a path: a digest or a tag.
type reference struct {
	digest oci.Digest
	tag    string
}

func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := oci.ParseDigest(s)
		return reference{digest: d}, err
	}
	if !oci.ValidTag(s) {
		return reference{}, oci.NewError(oci.ErrManifestInvalid, fmt.Sprintf("invalid tag %q", s))
	}
	return reference{tag: s}, nil
}

// resolve finds the digest a reference names in repo.
func (h *Handler) resolve(r *http.Request, name oci.Name, ref reference) (string, error) {
	if ref.tag == "" {
		return ref.digest.String(), nil
	}
	return h.d.Store.ResolveTag(r.Context(), name.String(), ref.tag)
}

// getManifest serves GET and HEAD of a manifest by tag or digest, exactly
// as pushed, with its media type.
func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, err := parseReference(rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d, err := h.resolve(r, rt.name, ref)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m, err := h.d.Store.GetManifest(r.Context(), rt.name.String(), d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", m.MediaType)
	hd.Set("Docker-Content-Digest", m.Digest)
	hd.Set("ETag", `"`+m.Digest+`"`)
	hd.Set("Content-Length", strconv.Itoa(len(m.Content)))
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, `"`+m.Digest+`"`) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(m.Content)
	h.audit(r, "pull", rt.name, rt.arg, m.Digest, "")
}

// putManifest stores a manifest by tag or digest (plus any ?tag=
// parameters), after checking it parses, its digest matches a digest
// reference and the repository has what it references.
func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, err := parseReference(rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tags := r.URL.Query()["tag"]
	if len(tags) > maxTagParams {
		h.fail(w, r, oci.NewError(oci.ErrUnsupported, fmt.Sprintf("at most %d tag parameters", maxTagParams)).WithStatus(http.StatusRequestURITooLong))
		return
	}
	for _, t := range tags {
		if !oci.ValidTag(t) {
			h.fail(w, r, oci.NewError(oci.ErrManifestInvalid, fmt.Sprintf("invalid tag %q", t)))
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(longBody(w, r), manifest.MaxSize+1))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m, err := manifest.Parse(r.Header.Get("Content-Type"), body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	alg := digest.Canonical
	if ref.tag == "" {
		alg = ref.digest.Algorithm()
	}
	d := manifest.DigestFor(alg, body)
	if ref.tag == "" && d != ref.digest {
		h.fail(w, r, oci.NewError(oci.ErrDigestInvalid, fmt.Sprintf("manifest digest is %s, not %s", d, ref.digest)))
		return
	}
	if ref.tag != "" {
		tags = append([]string{ref.tag}, tags...)
	}
	blobs, foreign, children := m.Refs()
	row := meta.Manifest{
		Repo: rt.name.String(), Digest: d.String(), MediaType: m.MediaType, ArtifactType: m.ArtifactType,
		ConfigMediaType: m.ConfigMediaType(), Subject: m.SubjectDigest(), Annotations: m.Annotations,
		Content: body, Blobs: blobs, ForeignBlobs: foreign, Children: children,
	}
	if err := h.d.Store.PutManifest(r.Context(), row, meta.PutOptions{Tags: tags, AllowMissing: h.d.AllowSparse}); err != nil {
		h.fail(w, r, err)
		return
	}
	h.audit(r, "push", rt.name, rt.arg, d.String(), strings.Join(tags, ","))
	hd := w.Header()
	hd.Set("Location", "/v2/"+rt.name.String()+"/manifests/"+d.String())
	hd.Set("Docker-Content-Digest", d.String())
	if s := m.SubjectDigest(); s != "" {
		hd.Set("OCI-Subject", s)
	}
	if q := r.URL.Query()["tag"]; len(q) > 0 {
		hd.Set("OCI-Tag", strings.Join(q, ", "))
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// deleteManifest deletes a manifest by digest (and the tags on it) or
// just a tag.
func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) {
	ref, err := parseReference(rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ref.tag != "" {
		d, err := h.d.Store.DeleteTag(r.Context(), rt.name.String(), ref.tag)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.audit(r, "delete", rt.name, ref.tag, d, "tag")
	} else {
		tags, err := h.d.Store.DeleteManifest(r.Context(), rt.name.String(), ref.digest.String())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.audit(r, "delete", rt.name, ref.digest.String(), ref.digest.String(), "manifest; tags: "+strings.Join(tags, ","))
	}
	w.WriteHeader(http.StatusAccepted)
}

// pageParams reads n and last. n < 0 means "not given".
func pageParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	n := -1
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return 0, "", oci.NewError(oci.ErrUnsupported, "n must be a non-negative integer").WithStatus(http.StatusBadRequest)
		}
		n = i
	}
	return n, q.Get("last"), nil
}

func nextLink(path string, n int, last string) string {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	return fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode())
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		oci.Write(w, oci.NewError(oci.ErrUnknown, "internal error"))
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// tags lists tags in byte order with n/last pagination and a Link to the
// next page.
func (h *Handler) tags(w http.ResponseWriter, r *http.Request, rt route) {
	n, last, err := pageParams(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	list, more, err := h.d.Store.Tags(r.Context(), rt.name.String(), last, n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	names := make([]string, 0, len(list))
	for _, t := range list {
		names = append(names, t.Name)
	}
	if more && n > 0 && len(names) > 0 {
		w.Header().Set("Link", nextLink("/v2/"+rt.name.String()+"/tags/list", n, names[len(names)-1]))
	}
	writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.name.String(), names})
}

// referrers lists the manifests whose subject is the digest, as an OCI
// index, optionally filtered by artifactType.
func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := oci.ParseDigest(rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	at := r.URL.Query().Get("artifactType")
	list, err := h.d.Store.Referrers(r.Context(), rt.name.String(), d.String(), at)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	descs := make([]manifest.Descriptor, 0, len(list))
	for _, m := range list {
		descs = append(descs, manifest.Descriptor{
			MediaType: m.MediaType, Digest: m.Digest, Size: m.Size,
			ArtifactType: meta.ReferrerArtifactType(m), Annotations: m.Annotations,
		})
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, oci.MediaTypeImageIndex, struct {
		SchemaVersion int                   `json:"schemaVersion"`
		MediaType     string                `json:"mediaType"`
		Manifests     []manifest.Descriptor `json:"manifests"`
	}{2, oci.MediaTypeImageIndex, descs})
}

// catalog lists repositories (admins), with n/last pagination.
func (h *Handler) catalog(w http.ResponseWriter, r *http.Request, _ route) {
	n, last, err := pageParams(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	names := []string{}
	more := false
	if n != 0 {
		limit := 0
		if n > 0 {
			limit = n + 1
		}
		repos, err := h.d.Store.Repositories(r.Context(), last, limit)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, repo := range repos {
			names = append(names, repo.Name)
		}
		if n > 0 && len(names) > n {
			names, more = names[:n], true
		}
	}
	if more {
		w.Header().Set("Link", nextLink("/v2/_catalog", n, names[len(names)-1]))
	}
	writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{names})
}
