package httpapi

import (
	"encoding/base64"
	"net/http"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// revokeCert revokes for the account that signed (kid) or for the holder
// of the certificate's key (jwk).
func (h *Handler) revokeCert(w http.ResponseWriter, r *http.Request, req *request) error {
	var p struct {
		Certificate string `json:"certificate"`
		Reason      *int   `json:"reason"`
	}
	if err := decode(req, &p); err != nil {
		return err
	}
	der, err := base64.RawURLEncoding.DecodeString(p.Certificate)
	if err != nil || len(der) == 0 {
		return acme.NewProblem(acme.ErrMalformed, "certificate is not base64url DER")
	}
	rr := acme.RevokeRequest{CertDER: der, Reason: p.Reason}
	if req.account != nil {
		err = h.svc.RevokeByAccount(r.Context(), req.mount, *req.account, rr)
	} else {
		err = h.svc.RevokeByKey(r.Context(), req.mount, req.issuer, req.key, rr)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
