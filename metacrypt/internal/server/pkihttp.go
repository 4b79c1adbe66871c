package server

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/gateway"
	"git.metacircular.net/metacircular/mcdsl/metrics"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/sshca"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// pkiHTTP serves the public CA endpoints: not RPCs (DER and PEM bodies,
// the OCSP wire format), unauthenticated, and answered while sealed
// (everything but OCSP reads public material from the store).
type pkiHTTP struct {
	ca *ca.Service
	// ssh serves the SSH CA's public key and KRL (sshhttp.go).
	ssh    *sshca.Service
	logger *slog.Logger
}

// The media types of the public endpoints.
const (
	typePEM          = "application/x-pem-file"
	typeCert         = "application/pkix-cert"
	typeCRL          = "application/pkix-crl"
	typeOCSPRequest  = "application/ocsp-request"
	typeOCSPResponse = "application/ocsp-response"
)

// routes puts the public endpoints on r.
func (h *pkiHTTP) routes(r chi.Router) {
	r.Get("/v1/pki/{mount}/ca", h.root(false))
	r.Get("/v1/pki/{mount}/ca/der", h.root(true))
	r.Get("/v1/pki/{mount}/ca/chain", h.chain)
	r.Get("/v1/pki/{mount}/issuer/{name}", h.issuer(false))
	r.Get("/v1/pki/{mount}/issuer/{name}/der", h.issuer(true))
	r.Get("/v1/pki/{mount}/crl/{issuer}", h.crl(false))
	r.Get("/v1/pki/{mount}/crl/{issuer}/pem", h.crl(true))
	r.Get("/v1/pki/{mount}/ocsp/*", h.ocspGET)
	r.Post("/v1/pki/{mount}/ocsp", h.ocspPOST)
	h.sshRoutes(r)
}

// handler is the whole HTTP face: the public endpoints, the routes of
// more (the ACME server's) and, for any other request, rest (the REST API
// generated from the proto), which answers unknown paths itself (404 "no
// such endpoint"). With rest nil it is the public endpoints alone, for the
// plain-HTTP [pki] listener.
func (h *pkiHTTP) handler(rest http.Handler, more ...func(chi.Router)) http.Handler {
	r := chi.NewRouter()
	r.Use(metrics.ChiRoutes)
	h.routes(r)
	for _, m := range more {
		m(r)
	}
	if rest == nil {
		rest = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { gateway.RoutingError(w, http.StatusNotFound) })
	}
	r.NotFound(rest.ServeHTTP)
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		gateway.RoutingError(w, http.StatusMethodNotAllowed)
	})
	return r
}

// withUI answers every path under /v1 with rest (the REST API, which
// answers an unknown one with its JSON 404) and every other path with ui,
// so the web UI can never take an API path, and the public endpoints and
// ACME routes, matched before either, keep theirs.
func withUI(rest, ui http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/v1" || strings.HasPrefix(p, "/v1/") {
			rest.ServeHTTP(w, r)
			return
		}
		ui.ServeHTTP(w, r)
	})
}

func (h *pkiHTTP) fail(w http.ResponseWriter, err error) {
	apierr.WriteHTTP(w, h.logger, err)
}

func write(w http.ResponseWriter, contentType string, maxAge time.Duration, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if maxAge > 0 {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds())))
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(body) //nolint:gosec // DER and PEM with their own media types, never HTML
}

const caMaxAge = time.Hour

func (h *pkiHTTP) root(der bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := h.ca.RootDER(r.Context(), chi.URLParam(r, "mount"))
		if err != nil {
			h.fail(w, err)
			return
		}
		if der {
			write(w, typeCert, caMaxAge, b)
			return
		}
		write(w, typePEM, caMaxAge, []byte(pki.EncodePEM(b)))
	}
}

func (h *pkiHTTP) chain(w http.ResponseWriter, r *http.Request) {
	ders, err := h.ca.ChainDER(r.Context(), chi.URLParam(r, "mount"))
	if err != nil {
		h.fail(w, err)
		return
	}
	write(w, typePEM, caMaxAge, []byte(pki.EncodePEM(ders...)))
}

func (h *pkiHTTP) issuer(der bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := h.ca.IssuerDER(r.Context(), chi.URLParam(r, "mount"), chi.URLParam(r, "name"))
		if err != nil {
			h.fail(w, err)
			return
		}
		if der {
			write(w, typeCert, caMaxAge, b)
			return
		}
		write(w, typePEM, caMaxAge, []byte(pki.EncodePEM(b)))
	}
}

// crlMaxAge is short: a CRL is rebuilt on every revocation.
const crlMaxAge = 5 * time.Minute

func (h *pkiHTTP) crl(asPEM bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := h.ca.CRLDER(r.Context(), chi.URLParam(r, "mount"), chi.URLParam(r, "issuer"))
		if err != nil {
			h.fail(w, err)
			return
		}
		if asPEM {
			write(w, typePEM, crlMaxAge, []byte(pki.EncodeCRL(b)))
			return
		}
		write(w, typeCRL, crlMaxAge, b)
	}
}

// ocspGET is RFC 6960 appendix A.1's GET: the request DER, base64, URL
// encoded, as the last path segment(s) (base64 may contain "/").
func (h *pkiHTTP) ocspGET(w http.ResponseWriter, r *http.Request) {
	enc := chi.URLParam(r, "*")
	if un, err := url.PathUnescape(enc); err == nil {
		enc = un
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "="))
	}
	if err != nil || len(raw) > ca.MaxOCSPRequest {
		raw = nil
	}
	h.ocsp(w, r, raw)
}

// ocspPOST is RFC 6960 appendix A.1's POST.
func (h *pkiHTTP) ocspPOST(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, typeOCSPRequest) {
		apierr.WriteStatus(w, apierr.Status{Kind: apierr.Invalid, Message: "Content-Type must be " + typeOCSPRequest})
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, ca.MaxOCSPRequest))
	if err != nil {
		raw = nil
	}
	h.ocsp(w, r, raw)
}

func (h *pkiHTTP) ocsp(w http.ResponseWriter, r *http.Request, raw []byte) {
	resp, until := h.ca.OCSP(r.Context(), chi.URLParam(r, "mount"), raw)
	var maxAge time.Duration
	if r.Method == http.MethodGet && !until.IsZero() {
		maxAge = time.Until(until)
	}
	write(w, typeOCSPResponse, maxAge, resp)
}
