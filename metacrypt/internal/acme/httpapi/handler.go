package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/jws"
)

// Handler serves the ACME directories of every CA issuer.
type Handler struct {
	svc    *acme.Service
	logger *slog.Logger
}

// New returns the ACME HTTP handler over svc.
func New(svc *acme.Service, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, logger: logger}
}

// Prefix is the route pattern the ACME routes are mounted under.
const Prefix = "/v1/pki/{mount}/acme/{issuer}"

// Routes puts the ACME routes of every directory on r (a router at the
// root; the routes carry Prefix).
func (h *Handler) Routes(r chi.Router) {
	r.Route(Prefix, func(r chi.Router) {
		r.Get("/directory", h.directory)
		r.Head("/directory", h.directory)
		r.Get("/new-nonce", h.newNonce)
		r.Head("/new-nonce", h.newNonce)
		r.Get("/renewal-info/{id}", h.renewalInfo)
		r.Post("/new-account", h.post(byJWK, h.newAccount))
		r.Post("/new-order", h.post(byKID, h.newOrder))
		r.Post("/account/{id}", h.post(byKID, h.account))
		r.Post("/account/{id}/orders", h.post(byKID, postAsGet(h.orders)))
		r.Post("/order/{id}", h.post(byKID, postAsGet(h.order)))
		r.Post("/order/{id}/finalize", h.post(byKID, h.finalize))
		r.Post("/authz/{id}", h.post(byKID, h.authz))
		r.Post("/chall/{authz}/{type}", h.post(byKID, h.challenge))
		r.Post("/cert/{serial}", h.post(byKID, postAsGet(h.certificate)))
		r.Post("/revoke-cert", h.post(byEither, h.revokeCert))
		r.Post("/key-change", h.post(byKID, h.keyChange))
	})
}

// The media types of ACME.
const (
	typeJOSE      = "application/jose+json"
	typeJSON      = "application/json"
	typeProblem   = "application/problem+json"
	typePEMChain  = "application/pem-certificate-chain"
	maxRetryAfter = 24 * time.Hour
)

// keyMode is how a route's requests must name their key.
type keyMode int

const (
	byKID keyMode = iota
	byJWK
	byEither
)

// request is a verified POST: the directory, the JWS, and the account
// (kid) or the embedded key (jwk) that signed it.
type request struct {
	mount, issuer string
	link          linker
	jws           *jws.JWS
	// account is set when the request was signed by an account (kid).
	account *acme.Account
	// key verified the signature: the account's or the embedded one.
	key *jws.JWK
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, req *request) error

// common writes the headers of every answer: a fresh nonce (when one can
// be made), the directory's index link, no caching.
func (h *Handler) common(w http.ResponseWriter, r *http.Request, l linker) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Link", `<`+l.directory()+`>;rel="index"`)
	if h.svc.Sealed() {
		return
	}
	if n, err := h.svc.NewNonce(r.Context(), chi.URLParam(r, "mount")); err == nil {
		w.Header().Set("Replay-Nonce", n)
	}
}

// fail writes err as a problem document.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, fallback string) {
	var kiu *acme.KeyInUse
	if errors.As(err, &kiu) {
		w.Header().Set("Location", linkerFor(r).account(kiu.Account))
		err = kiu.Problem()
	}
	p := acme.ProblemOf(err, fallback)
	if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
		h.logger.Error("acme: request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(min(p.RetryAfter, maxRetryAfter).Seconds())))
	}
	w.Header().Set("Content-Type", typeProblem)
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", typeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// post verifies a POST per RFC 8555 §6 before fn sees it: a live
// directory, the JOSE media type, a flattened JWS with an accepted
// algorithm, its url equal to the request's, an unused nonce, the key as
// the route wants it (km), and the signature.
func (h *Handler) post(km keyMode, fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l := linkerFor(r)
		req, err := h.verify(r, l, km)
		h.common(w, r, l)
		if err == nil {
			err = fn(w, r, req)
		}
		if err != nil {
			h.fail(w, r, err, acme.ErrMalformed)
		}
	}
}

func (h *Handler) verify(r *http.Request, l linker, km keyMode) (*request, error) {
	ctx := r.Context()
	req := &request{mount: chi.URLParam(r, "mount"), issuer: chi.URLParam(r, "issuer"), link: l}
	if h.svc.Sealed() {
		return nil, sealedProblem()
	}
	if err := h.svc.CheckDirectory(ctx, req.mount, req.issuer); err != nil {
		return nil, err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != typeJOSE {
		p := acme.NewProblem(acme.ErrMalformed, "Content-Type must be %s", typeJOSE)
		p.Status = http.StatusUnsupportedMediaType
		return nil, p
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, jws.MaxBody+1))
	if err != nil {
		return nil, acme.NewProblem(acme.ErrMalformed, "reading the request: %v", err)
	}
	j, err := jws.Parse(body)
	if err != nil {
		return nil, acme.NewProblem(acme.ErrMalformed, "%v", err)
	}
	if err := j.CheckRequest(jws.Rules{}); err != nil {
		return nil, jwsProblem(err)
	}
	if j.Header.URL != requestURL(r) {
		return nil, acme.NewProblem(acme.ErrUnauthorized, "the JWS url %q is not this request's URL", j.Header.URL)
	}
	if err := h.svc.UseNonce(ctx, req.mount, j.Header.Nonce); err != nil {
		return nil, err
	}
	req.jws = j
	switch {
	case j.Header.JWK != nil && km == byKID:
		return nil, acme.NewProblem(acme.ErrMalformed, "this resource takes requests signed by an account (kid), not a jwk")
	case j.Header.KID != "" && km == byJWK:
		return nil, acme.NewProblem(acme.ErrMalformed, "this resource takes requests with an embedded jwk, not a kid")
	case j.Header.JWK != nil:
		req.key = j.Header.JWK
	default:
		id, ok := l.accountID(j.Header.KID)
		if !ok {
			return nil, acme.NewProblem(acme.ErrAccountDoesNotExist, "kid %q is not an account URL of this directory", j.Header.KID)
		}
		a, err := h.svc.Account(ctx, req.mount, req.issuer, id)
		if err != nil {
			return nil, err
		}
		key, err := a.AccountKey()
		if err != nil {
			return nil, err
		}
		req.account, req.key = &a, key
	}
	if err := j.Verify(req.key); err != nil {
		return nil, jwsProblem(err)
	}
	return req, nil
}

// sealedProblem is what a sealed Metacrypt answers.
func sealedProblem() error {
	p := acme.NewProblem(acme.ErrServerInternal, "metacrypt is sealed")
	p.Status, p.RetryAfter = http.StatusServiceUnavailable, acme.SealedRetry
	return p
}

// jwsProblem maps the jws package's errors to problems.
func jwsProblem(err error) *acme.Problem {
	switch {
	case errors.Is(err, jws.ErrAlgorithm):
		p := acme.NewProblem(acme.ErrBadSignatureAlgorithm, "%v", err)
		p.Algorithms = jws.Algorithms
		return p
	case errors.Is(err, jws.ErrKey):
		return acme.NewProblem(acme.ErrBadPublicKey, "%v", err)
	}
	return acme.NewProblem(acme.ErrMalformed, "%v", err)
}

// postAsGet refuses a payload (RFC 8555 §6.3).
func postAsGet(fn handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, req *request) error {
		if !req.jws.PostAsGet() {
			return acme.NewProblem(acme.ErrMalformed, "this resource takes POST-as-GET: an empty payload")
		}
		return fn(w, r, req)
	}
}

// decode reads a JSON payload; unknown members are ignored (RFC 8555
// §7.1: clients may send fields a server does not know).
func decode(req *request, v any) error {
	if err := json.Unmarshal(req.jws.Payload, v); err != nil {
		return acme.NewProblem(acme.ErrMalformed, "payload: %v", err)
	}
	return nil
}

func (h *Handler) directory(w http.ResponseWriter, r *http.Request) {
	l := linkerFor(r)
	w.Header().Set("Cache-Control", "no-store")
	if err := h.svc.CheckDirectory(r.Context(), chi.URLParam(r, "mount"), chi.URLParam(r, "issuer")); err != nil {
		h.fail(w, r, err, acme.ErrMalformed)
		return
	}
	writeJSON(w, http.StatusOK, directoryJSON{
		NewNonce: l.newNonce(), NewAccount: l.newAccount(), NewOrder: l.newOrder(), RevokeCert: l.revokeCert(),
		KeyChange: l.keyChange(), RenewalInfo: l.renewalInfo(), Meta: metaJSON{ExternalAccountRequired: true},
	})
}

func (h *Handler) newNonce(w http.ResponseWriter, r *http.Request) {
	l := linkerFor(r)
	if h.svc.Sealed() {
		h.fail(w, r, sealedProblem(), acme.ErrMalformed)
		return
	}
	if err := h.svc.CheckDirectory(r.Context(), chi.URLParam(r, "mount"), chi.URLParam(r, "issuer")); err != nil {
		h.fail(w, r, err, acme.ErrMalformed)
		return
	}
	n, err := h.svc.NewNonce(r.Context(), chi.URLParam(r, "mount"))
	if err != nil {
		h.fail(w, r, err, acme.ErrMalformed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Link", `<`+l.directory()+`>;rel="index"`)
	w.Header().Set("Replay-Nonce", n)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) renewalInfo(w http.ResponseWriter, r *http.Request) {
	l := linkerFor(r)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Add("Link", `<`+l.directory()+`>;rel="index"`)
	if h.svc.Sealed() {
		h.fail(w, r, sealedProblem(), acme.ErrMalformed)
		return
	}
	win, err := h.svc.RenewalInfo(r.Context(), chi.URLParam(r, "mount"), chi.URLParam(r, "issuer"), chi.URLParam(r, "id"))
	if err != nil {
		h.fail(w, r, err, acme.ErrMalformed)
		return
	}
	var out renewalInfoJSON
	out.SuggestedWindow.Start, out.SuggestedWindow.End = rfc3339(win.Start), rfc3339(win.End)
	w.Header().Set("Retry-After", strconv.Itoa(int(acme.ARIRetryAfter.Seconds())))
	writeJSON(w, http.StatusOK, out)
}
