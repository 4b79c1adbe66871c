package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"git.metacircular.net/metacircular/mcdsl/jsonapi"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/health"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// REST serves the MCIAS REST API.
type REST struct {
	cfg    *Config
	svc    *identity.Service
	logger *slog.Logger
	check  health.Checker
}

// NewREST builds the REST handler.
func NewREST(cfg *Config, svc *identity.Service, check health.Checker, logger *slog.Logger) *REST {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &REST{cfg: cfg, svc: svc, logger: logger, check: check}
}

// Handler returns the router.
func (h *REST) Handler() http.Handler {
	r := chi.NewRouter()
	r.Method(http.MethodGet, health.Path, health.Handler(h.check))
	r.Get("/.well-known/jwks.json", h.jwks)
	r.Post("/v1/auth/login", h.login)
	r.Post("/v1/token/validate", h.validate)

	// The JSON API has no CSRF protection, so it takes bearer tokens only:
	// the web UI's session cookie (same host) must not act here.
	authed := auth.Middleware(h.svc, auth.MiddlewareOptions{BearerOnly: true})
	r.Group(func(r chi.Router) {
		r.Use(authed)
		r.Post("/v1/auth/renew", h.renew)
		r.Post("/v1/auth/logout", h.logout)
		r.Get("/v1/whoami", h.whoami)
		r.Post("/v1/token/revoke", h.revoke)
		r.Get("/v1/accounts", h.listAccounts)
		r.Post("/v1/accounts", h.createAccount)
		r.Get("/v1/accounts/{id}", h.getAccount)
		r.Patch("/v1/accounts/{id}", h.updateAccount)
		r.Delete("/v1/accounts/{id}", h.deleteAccount)
		r.Put("/v1/accounts/{id}/roles", h.setRoles)
		r.Post("/v1/accounts/{id}/password", h.changePassword)
		r.Post("/v1/accounts/{id}/token", h.issueSystemToken)
		r.Get("/v1/accounts/{id}/tokens", h.listTokens)
		r.Post("/v1/accounts/{id}/totp", h.enrollTOTP)
		r.Post("/v1/accounts/{id}/totp/confirm", h.confirmTOTP)
		r.Delete("/v1/accounts/{id}/totp", h.disableTOTP)
		r.Get("/v1/policies", h.listPolicies)
		r.Post("/v1/policies", h.createPolicy)
		r.Get("/v1/policies/{id}", h.getPolicy)
		r.Put("/v1/policies/{id}", h.updatePolicy)
		r.Delete("/v1/policies/{id}", h.deletePolicy)
		r.Get("/v1/keys", h.listKeys)
		r.Post("/v1/keys/rotate", h.rotateKey)
	})
	h.mountSSO(r)
	h.mountWeb(r)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		jsonapi.Error(w, http.StatusNotFound, "no such endpoint")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		jsonapi.Error(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

func (h *REST) fail(w http.ResponseWriter, err error) {
	code, msg := statusOf(err)
	if code == http.StatusInternalServerError {
		h.logger.Error("internal error", "error", err)
	}
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	jsonapi.Error(w, code, msg)
}

// decode reads a JSON body strictly (jsonapi.Decode); bad input maps to 400.
func decode(w http.ResponseWriter, r *http.Request, dst any) error {
	return jsonapi.Decode(w, r, dst, identity.ErrInvalid)
}

func caller(r *http.Request) *auth.Identity {
	id, _ := auth.IdentityFrom(r.Context())
	return id
}

// accountID resolves the {id} path parameter, which may be an account ID or
// a username. Non-admins may only name themselves.
func (h *REST) accountID(r *http.Request) (string, error) {
	return resolveAccount(r.Context(), h.svc, caller(r), chi.URLParam(r, "id"))
}

func resolveAccount(ctx context.Context, svc *identity.Service, c *auth.Identity, idOrName string) (string, error) {
	if idOrName == c.Subject || idOrName == c.Username {
		return c.Subject, nil
	}
	if !c.IsAdmin() {
		return "", identity.ErrForbidden
	}
	a, err := svc.FindAccount(ctx, c, idOrName)
	if err != nil {
		return "", err
	}
	return a.ID, nil
}

// --- handlers ---

type loginBody struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	TOTPCode    string   `json:"totp_code"`
	ServiceName string   `json:"service_name"`
	Tags        []string `json:"tags"`
}

func (h *REST) login(w http.ResponseWriter, r *http.Request) {
	var b loginBody
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	iss, err := h.svc.Login(r.Context(), identity.LoginRequest{
		Username: b.Username, Password: b.Password, TOTPCode: b.TOTPCode,
		ServiceName: b.ServiceName, Tags: b.Tags, RemoteIP: r.RemoteAddr,
	})
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, iss)
}

func (h *REST) validate(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Token string `json:"token"`
	}
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	id, err := h.svc.ValidateToken(r.Context(), b.Token)
	if errors.Is(err, identity.ErrInvalidToken) {
		jsonapi.Write(w, http.StatusOK, map[string]bool{"valid": false})
		return
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, validResponse{Valid: true, Subject: id.Subject, Username: id.Username,
		AccountType: id.AccountType, Roles: id.Roles, ExpiresAt: id.ExpiresAt})
}

type validResponse struct {
	Valid       bool      `json:"valid"`
	Subject     string    `json:"subject"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Roles       []string  `json:"roles"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (h *REST) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_ = json.NewEncoder(w).Encode(h.svc.JWKS())
}

func bearer(r *http.Request) string {
	tok, _ := auth.BearerToken(r.Header.Get("Authorization"))
	return tok
}

func (h *REST) renew(w http.ResponseWriter, r *http.Request) {
	iss, err := h.svc.Renew(r.Context(), bearer(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, iss)
}

func (h *REST) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.Logout(r.Context(), bearer(r)); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *REST) whoami(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	jsonapi.Write(w, http.StatusOK, validResponse{Valid: true, Subject: c.Subject, Username: c.Username,
		AccountType: c.AccountType, Roles: c.Roles, ExpiresAt: c.ExpiresAt})
}

func (h *REST) revoke(w http.ResponseWriter, r *http.Request) {
	var b struct {
		JTI string `json:"jti"`
	}
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	if err := h.svc.RevokeToken(r.Context(), caller(r), b.JTI); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *REST) listAccounts(w http.ResponseWriter, r *http.Request) {
	list, err := h.svc.ListAccounts(r.Context(), caller(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string]any{"accounts": list})
}

func (h *REST) createAccount(w http.ResponseWriter, r *http.Request) {
	var b identity.CreateAccountRequest
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	a, err := h.svc.CreateAccount(r.Context(), caller(r), b)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusCreated, a)
}

func (h *REST) getAccount(w http.ResponseWriter, r *http.Request) {
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	a, err := h.svc.GetAccount(r.Context(), caller(r), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, a)
}

func (h *REST) updateAccount(w http.ResponseWriter, r *http.Request) {
	var b identity.UpdateAccountRequest
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	h.update(w, r, b)
}

func (h *REST) update(w http.ResponseWriter, r *http.Request, b identity.UpdateAccountRequest) {
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	a, err := h.svc.UpdateAccount(r.Context(), caller(r), id, b)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, a)
}

func (h *REST) setRoles(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Roles []string `json:"roles"`
	}
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	if b.Roles == nil {
		b.Roles = []string{}
	}
	h.update(w, r, identity.UpdateAccountRequest{Roles: &b.Roles})
}

func (h *REST) deleteAccount(w http.ResponseWriter, r *http.Request) {
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.svc.DeleteAccount(r.Context(), caller(r), id); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *REST) changePassword(w http.ResponseWriter, r *http.Request) {
	var b struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	if id != caller(r).Subject {
		h.fail(w, fmt.Errorf("%w: only the account itself changes its password; admins reset it with PATCH", identity.ErrForbidden))
		return
	}
	if err := h.svc.ChangePassword(r.Context(), caller(r), b.CurrentPassword, b.NewPassword); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *REST) issueSystemToken(w http.ResponseWriter, r *http.Request) {
	var b struct {
		TTL string `json:"ttl"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, &b); err != nil {
			h.fail(w, err)
			return
		}
	}
	var ttl time.Duration
	if b.TTL != "" {
		d, err := time.ParseDuration(b.TTL)
		if err != nil || d <= 0 {
			h.fail(w, fmt.Errorf("%w: ttl %q: expected a positive duration like \"720h\"", identity.ErrInvalid, b.TTL))
			return
		}
		ttl = d
	}
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	iss, err := h.svc.IssueSystemToken(r.Context(), caller(r), id, ttl)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, iss)
}

func (h *REST) listTokens(w http.ResponseWriter, r *http.Request) {
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	list, err := h.svc.ListTokens(r.Context(), caller(r), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string]any{"tokens": list})
}

func (h *REST) enrollTOTP(w http.ResponseWriter, r *http.Request) {
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	e, err := h.svc.EnrollTOTP(r.Context(), caller(r), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, e)
}

type codeBody struct {
	Code string `json:"code"`
}

func (h *REST) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	var b codeBody
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	codes, err := h.svc.ConfirmTOTP(r.Context(), caller(r), id, b.Code)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

func (h *REST) disableTOTP(w http.ResponseWriter, r *http.Request) {
	var b codeBody
	if r.ContentLength != 0 {
		if err := decode(w, r, &b); err != nil {
			h.fail(w, err)
			return
		}
	}
	id, err := h.accountID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.svc.DisableTOTP(r.Context(), caller(r), id, b.Code); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func policyID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: policy id must be a positive integer", identity.ErrInvalid)
	}
	return id, nil
}

func (h *REST) listPolicies(w http.ResponseWriter, r *http.Request) {
	list, err := h.svc.ListPolicies(r.Context(), caller(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string]any{"policies": list})
}

func (h *REST) createPolicy(w http.ResponseWriter, r *http.Request) {
	var b policy.Rule
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	b.ID = 0
	out, err := h.svc.CreatePolicy(r.Context(), caller(r), b)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusCreated, out)
}

func (h *REST) getPolicy(w http.ResponseWriter, r *http.Request) {
	id, err := policyID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	out, err := h.svc.GetPolicy(r.Context(), caller(r), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, out)
}

func (h *REST) updatePolicy(w http.ResponseWriter, r *http.Request) {
	id, err := policyID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	var b policy.Rule
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	b.ID = id
	out, err := h.svc.UpdatePolicy(r.Context(), caller(r), b)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, out)
}

func (h *REST) deletePolicy(w http.ResponseWriter, r *http.Request) {
	id, err := policyID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.svc.DeletePolicy(r.Context(), caller(r), id); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *REST) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := h.svc.Keys(r.Context(), caller(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string]any{"keys": keys})
}

func (h *REST) rotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := h.svc.RotateKey(r.Context(), caller(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, k)
}
