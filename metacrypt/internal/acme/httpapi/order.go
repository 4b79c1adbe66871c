package httpapi

import (
	"encoding/base64"
	"net/http"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

func (h *Handler) newOrder(w http.ResponseWriter, r *http.Request, req *request) error {
	var p acme.NewOrderRequest
	if err := decode(req, &p); err != nil {
		return err
	}
	o, err := h.svc.NewOrder(r.Context(), req.mount, *req.account, p)
	if err != nil {
		return err
	}
	w.Header().Set("Location", req.link.order(o.ID))
	writeJSON(w, http.StatusCreated, req.link.orderJSON(o))
	return nil
}

func (h *Handler) order(w http.ResponseWriter, r *http.Request, req *request) error {
	o, err := h.svc.Order(r.Context(), req.mount, *req.account, chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	if o.Status == acme.StatusPending || o.Status == acme.StatusProcessing {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, req.link.orderJSON(o))
	return nil
}

func (h *Handler) finalize(w http.ResponseWriter, r *http.Request, req *request) error {
	var p struct {
		CSR string `json:"csr"`
	}
	if err := decode(req, &p); err != nil {
		return err
	}
	der, err := base64.RawURLEncoding.DecodeString(p.CSR)
	if err != nil || len(der) == 0 {
		return acme.NewProblem(acme.ErrBadCSR, "csr is not base64url DER")
	}
	o, err := h.svc.Finalize(r.Context(), req.mount, *req.account, chi.URLParam(r, "id"), der)
	if err != nil {
		if acme.Is(err, acme.ErrBadCSR) || acme.Is(err, acme.ErrOrderNotReady) || acme.Is(err, acme.ErrUnauthorized) {
			return err
		}
		return acme.ProblemOf(err, acme.ErrBadCSR)
	}
	w.Header().Set("Location", req.link.order(o.ID))
	writeJSON(w, http.StatusOK, req.link.orderJSON(o))
	return nil
}

func (h *Handler) certificate(w http.ResponseWriter, r *http.Request, req *request) error {
	c, err := h.svc.Certificate(r.Context(), req.mount, *req.account, chi.URLParam(r, "serial"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", typePEMChain)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(c.ChainPEM))
	return nil
}
