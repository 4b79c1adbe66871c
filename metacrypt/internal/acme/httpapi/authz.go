package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// authz answers POST-as-GET with the authorization, or deactivates it.
func (h *Handler) authz(w http.ResponseWriter, r *http.Request, req *request) error {
	id := chi.URLParam(r, "id")
	var (
		az  acme.Authz
		err error
	)
	if req.jws.PostAsGet() {
		az, err = h.svc.Authz(r.Context(), req.mount, *req.account, id)
	} else {
		var p struct {
			Status acme.Status `json:"status"`
		}
		if err := decode(req, &p); err != nil {
			return err
		}
		if p.Status != acme.StatusDeactivated {
			return acme.NewProblem(acme.ErrMalformed, "an authorization may only be deactivated")
		}
		az, err = h.svc.DeactivateAuthz(r.Context(), req.mount, *req.account, id)
	}
	if err != nil {
		return err
	}
	if processing(az) {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, req.link.authzJSON(az))
	return nil
}

func processing(az acme.Authz) bool {
	for _, c := range az.Challenges {
		if c.Status == acme.StatusProcessing {
			return true
		}
	}
	return false
}

// challenge starts a challenge's validation (payload {}) or answers
// POST-as-GET with it.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, req *request) error {
	authzID, t := chi.URLParam(r, "authz"), acme.ChallengeType(chi.URLParam(r, "type"))
	var (
		az  acme.Authz
		ch  acme.Challenge
		err error
	)
	if req.jws.PostAsGet() {
		az, err = h.svc.Authz(r.Context(), req.mount, *req.account, authzID)
		if err == nil {
			c, ok := az.Challenge(t)
			if !ok {
				return acme.NewProblem(acme.ErrMalformed, "no such challenge")
			}
			ch = *c
		}
	} else {
		var p map[string]any
		if err := decode(req, &p); err != nil {
			return err
		}
		az, ch, err = h.svc.RespondChallenge(r.Context(), req.mount, *req.account, authzID, t)
	}
	if err != nil {
		return err
	}
	w.Header().Add("Link", `<`+req.link.authz(az.ID)+`>;rel="up"`)
	if ch.Status == acme.StatusProcessing {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, req.link.challengeJSON(az.ID, ch))
	return nil
}
