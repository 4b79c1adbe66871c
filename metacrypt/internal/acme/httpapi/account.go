package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

type newAccountPayload struct {
	Contact                []string        `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
}

func (h *Handler) newAccount(w http.ResponseWriter, r *http.Request, req *request) error {
	var p newAccountPayload
	if err := decode(req, &p); err != nil {
		return err
	}
	a, created, err := h.svc.NewAccount(r.Context(), req.mount, req.issuer, acme.NewAccountRequest{
		Key: req.key, URL: req.link.newAccount(), Contact: p.Contact, TermsAgreed: p.TermsOfServiceAgreed,
		OnlyReturnExisting: p.OnlyReturnExisting, EAB: p.ExternalAccountBinding,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", req.link.account(a.ID))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, req.link.accountJSON(a))
	return nil
}

type accountPayload struct {
	Contact *[]string   `json:"contact"`
	Status  acme.Status `json:"status"`
}

// account answers POST-as-GET with the account, or changes its contacts
// or deactivates it.
func (h *Handler) account(w http.ResponseWriter, r *http.Request, req *request) error {
	if chi.URLParam(r, "id") != req.account.ID {
		return acme.NewProblem(acme.ErrUnauthorized, "the request is signed by another account")
	}
	a := *req.account
	if !req.jws.PostAsGet() {
		var p accountPayload
		if err := decode(req, &p); err != nil {
			return err
		}
		if p.Status != "" && p.Status != acme.StatusDeactivated && p.Status != a.Status {
			return acme.NewProblem(acme.ErrMalformed, "status may only become deactivated")
		}
		var err error
		if a, err = h.svc.UpdateAccount(r.Context(), req.mount, a, p.Contact, p.Status == acme.StatusDeactivated); err != nil {
			return err
		}
	}
	w.Header().Set("Location", req.link.account(a.ID))
	writeJSON(w, http.StatusOK, req.link.accountJSON(a))
	return nil
}

func (h *Handler) orders(w http.ResponseWriter, r *http.Request, req *request) error {
	if chi.URLParam(r, "id") != req.account.ID {
		return acme.NewProblem(acme.ErrUnauthorized, "the request is signed by another account")
	}
	ids, err := h.svc.Orders(r.Context(), req.mount, *req.account)
	if err != nil {
		return err
	}
	out := struct {
		Orders []string `json:"orders"`
	}{Orders: make([]string, len(ids))}
	for i, id := range ids {
		out.Orders[i] = req.link.order(id)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) keyChange(w http.ResponseWriter, r *http.Request, req *request) error {
	a, err := h.svc.KeyChange(r.Context(), req.mount, *req.account, req.jws.Payload, req.link.keyChange(), req.link.account(req.account.ID))
	if err != nil {
		return err
	}
	w.Header().Set("Location", req.link.account(a.ID))
	writeJSON(w, http.StatusOK, req.link.accountJSON(a))
	return nil
}
