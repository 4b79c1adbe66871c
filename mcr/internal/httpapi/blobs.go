package httpapi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/oci"
	"git.metacircular.net/metacircular/mcr/internal/upload"
)

// getBlob serves GET and HEAD of a blob linked into the repository, with
// Range support (http.ServeContent: single and multiple ranges, 416 for
// unsatisfiable ones) and the digest as a strong ETag.
func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := oci.ParseDigest(rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	size, err := h.d.Store.RepoBlob(r.Context(), rt.name.String(), d.String())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f, err := h.d.Blobs.Open(d)
	if errors.Is(err, fs.ErrNotExist) {
		h.d.Logger.Error("blob recorded but missing from the content store", "digest", d)
		h.fail(w, r, meta.ErrBlobUnknown)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer func() { _ = f.Close() }()
	hd := w.Header()
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Content-Type", oci.MediaTypeOctetStream)
	hd.Set("ETag", `"`+d.String()+`"`)
	hd.Set("Cache-Control", "private, max-age=31536000, immutable")
	if r.Method == http.MethodHead {
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
		hd.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return
	}
	http.ServeContent(deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w)}, r, "", time.Time{}, f)
}

// deleteBlob removes a blob's link from the repository; the content goes
// when the garbage collector finds nothing references it.
func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) {
	d, err := oci.ParseDigest(rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.d.Store.UnlinkBlob(r.Context(), rt.name.String(), d.String()); err != nil {
		h.fail(w, r, err)
		return
	}
	h.audit(r, "delete", rt.name, d.String(), d.String(), "blob")
	w.WriteHeader(http.StatusAccepted)
}

func blobLocation(name oci.Name, d oci.Digest) string {
	return "/v2/" + name.String() + "/blobs/" + d.String()
}

func uploadLocation(name oci.Name, id string) string {
	return "/v2/" + name.String() + "/blobs/uploads/" + id
}

// uploadHeaders describe a session's state.
func uploadHeaders(w http.ResponseWriter, name oci.Name, u meta.Upload) {
	w.Header().Set("Location", uploadLocation(name, u.ID))
	w.Header().Set("Range", oci.UploadRange(u.Size))
	w.Header().Set("Docker-Upload-UUID", u.ID)
	w.Header().Set("Content-Length", "0")
}

// bodyLength is the request's Content-Length, -1 when unknown.
func bodyLength(r *http.Request) int64 {
	if r.ContentLength >= 0 {
		return r.ContentLength
	}
	return -1
}

// startUpload answers POST /blobs/uploads/: a cross-repository mount
// (mount= with or without from=), a single-request upload (digest= with
// the blob as body), or a new session (202 with its Location).
func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := oci.ParseDigest(m)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if ok, err := h.mount(r, rt.name, d, q.Get("from")); err != nil {
			h.fail(w, r, err)
			return
		} else if ok {
			w.Header().Set("Location", blobLocation(rt.name, d))
			w.Header().Set("Docker-Content-Digest", d.String())
			w.WriteHeader(http.StatusCreated)
			return
		}
	}
	alg, err := oci.ParseAlgorithm(q.Get("digest-algorithm"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var want oci.Digest
	if v := q.Get("digest"); v != "" {
		if want, err = oci.ParseDigest(v); err != nil {
			h.fail(w, r, err)
			return
		}
		alg = want.Algorithm()
	}
	u, err := h.d.Uploads.Start(r.Context(), rt.name.String(), alg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if want == "" {
		uploadHeaders(w, rt.name, u)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	var body io.Reader
	if r.ContentLength != 0 {
		body = longBody(w, r)
	}
	if _, err := h.d.Uploads.Finish(r.Context(), rt.name.String(), u.ID, want, body, nil, bodyLength(r)); err != nil {
		_ = h.d.Uploads.Cancel(r.Context(), rt.name.String(), u.ID)
		h.fail(w, r, err)
		return
	}
	h.blobCreated(w, r, rt.name, want)
}

// mount links d into name from from (which the caller must be able to
// pull, by its token or the policy in force) or, without from, from any
// repository holding it that the caller may pull. It reports whether it
// mounted; false means "upload it instead".
func (h *Handler) mount(r *http.Request, name oci.Name, d oci.Digest, from string) (bool, error) {
	c := callerFrom(r.Context())
	canPull := func(repo string) bool {
		if c.claims != nil && c.claims.Allows(oci.ResourceRepository, repo, oci.ActionPull) {
			return true
		}
		return h.d.Policy().Can(c.principal, repo, oci.ActionPull)
	}
	var sources []string
	if from != "" {
		src, err := oci.ParseName(from)
		if err != nil {
			return false, err
		}
		if !canPull(src.String()) {
			return false, nil
		}
		sources = []string{src.String()}
	} else {
		repos, err := h.d.Store.RepositoriesWithBlob(r.Context(), d.String())
		if err != nil {
			return false, err
		}
		for _, repo := range repos {
			if canPull(repo) {
				sources = append(sources, repo)
			}
		}
		if len(sources) == 0 {
			return false, nil
		}
	}
	ok, _, err := h.d.Store.Mount(r.Context(), name.String(), d.String(), sources)
	return ok, err
}

// blobCreated answers a completed upload.
func (h *Handler) blobCreated(w http.ResponseWriter, r *http.Request, name oci.Name, d oci.Digest) {
	h.audit(r, "push", name, d.String(), d.String(), "blob")
	w.Header().Set("Location", blobLocation(name, d))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// uploadStatus answers GET of a session: 204 with its Range.
func (h *Handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) {
	u, err := h.d.Uploads.Status(r.Context(), rt.name.String(), rt.arg)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	uploadHeaders(w, rt.name, u)
	w.WriteHeader(http.StatusNoContent)
}

// chunkRange parses an optional Content-Range.
func chunkRange(r *http.Request) (*oci.ChunkRange, error) {
	v := r.Header.Get("Content-Range")
	if v == "" {
		return nil, nil
	}
	rng, err := oci.ParseContentRange(v)
	if err != nil {
		return nil, oci.NewError(oci.ErrBlobUploadInvalid, err.Error()).WithStatus(http.StatusRequestedRangeNotSatisfiable)
	}
	return &rng, nil
}

// rangeFail answers a chunk at the wrong offset: 416 with where the
// session stands.
func (h *Handler) rangeFail(w http.ResponseWriter, rt route, err error) bool {
	var re *upload.RangeError
	if !errors.As(err, &re) {
		return false
	}
	w.Header().Set("Location", uploadLocation(rt.name, rt.arg))
	w.Header().Set("Range", oci.UploadRange(re.Size))
	w.Header().Set("Docker-Upload-UUID", rt.arg)
	oci.Write(w, oci.NewError(oci.ErrRangeInvalid, fmt.Sprintf("chunk must start at byte %d", re.Size)).
		WithStatus(http.StatusRequestedRangeNotSatisfiable))
	return true
}

// patchUpload appends a chunk (Content-Range) or a stream (none).
func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) {
	rng, err := chunkRange(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.d.Uploads.Append(r.Context(), rt.name.String(), rt.arg, longBody(w, r), rng, bodyLength(r))
	if err != nil {
		if !h.rangeFail(w, rt, err) {
			h.fail(w, r, err)
		}
		return
	}
	uploadHeaders(w, rt.name, u)
	w.WriteHeader(http.StatusAccepted)
}

// putUpload closes a session with ?digest=, appending a final chunk sent
// in the body.
func (h *Handler) putUpload(w http.ResponseWriter, r *http.Request, rt route) {
	v := r.URL.Query().Get("digest")
	if v == "" {
		h.fail(w, r, oci.NewError(oci.ErrDigestInvalid, "the closing PUT needs ?digest="))
		return
	}
	want, err := oci.ParseDigest(v)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rng, err := chunkRange(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var body io.Reader
	if r.ContentLength != 0 {
		body = longBody(w, r)
	}
	if _, err := h.d.Uploads.Finish(r.Context(), rt.name.String(), rt.arg, want, body, rng, bodyLength(r)); err != nil {
		if !h.rangeFail(w, rt, err) {
			h.fail(w, r, err)
		}
		return
	}
	h.blobCreated(w, r, rt.name, want)
}

// cancelUpload ends a session.
func (h *Handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) {
	if err := h.d.Uploads.Cancel(r.Context(), rt.name.String(), rt.arg); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
