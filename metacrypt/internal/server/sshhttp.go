package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// The SSH CA's public endpoints, beside the CA's (pkihttp.go): the CA
// public key for sshd's TrustedUserCAKeys and known_hosts
// "@cert-authority" lines, and the KRL for sshd's RevokedKeys. They are
// read from the copy the engine publishes outside the barrier, so they
// answer without a token and while sealed; hosts fetch them on a timer,
// so they carry an ETag (the body's SHA-256) and Last-Modified (the KRL's
// generation time, strictly increasing) and answer conditional requests
// with 304.

// The media types of the SSH endpoints.
const (
	typeSSHKey = "text/plain; charset=utf-8"
	typeKRL    = "application/octet-stream"
)

// sshRoutes puts the SSH CA's public endpoints on r.
func (h *pkiHTTP) sshRoutes(r chi.Router) {
	for _, method := range []func(string, http.HandlerFunc){r.Get, r.Head} {
		method("/v1/ssh/{mount}/ca", h.sshCA)
		method("/v1/ssh/{mount}/krl", h.sshKRL)
	}
}

func (h *pkiHTTP) sshCA(w http.ResponseWriter, r *http.Request) {
	p, err := h.ssh.Public(r.Context(), chi.URLParam(r, "mount"))
	if err != nil {
		h.fail(w, err)
		return
	}
	serveSSH(w, r, typeSSHKey, caMaxAge, p.CreatedAt, []byte(p.PublicKey))
}

func (h *pkiHTTP) sshKRL(w http.ResponseWriter, r *http.Request) {
	p, err := h.ssh.Public(r.Context(), chi.URLParam(r, "mount"))
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("X-KRL-Version", strconv.FormatUint(p.KRLVersion, 10))
	// no-cache: a revocation must reach the next fetch; the ETag makes
	// the check a 304.
	serveSSH(w, r, typeKRL, 0, p.KRLGeneratedAt, p.KRL)
}

// serveSSH answers with body, its ETag and Last-Modified, through
// http.ServeContent (Content-Length, HEAD, If-None-Match,
// If-Modified-Since, ranges).
func serveSSH(w http.ResponseWriter, r *http.Request, contentType string, maxAge time.Duration, modified time.Time, body []byte) {
	sum := sha256.Sum256(body)
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	hd.Set("X-Content-Type-Options", "nosniff")
	if maxAge > 0 {
		hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds())))
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", modified, bytes.NewReader(body))
}
