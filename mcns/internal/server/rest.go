package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"git.metacircular.net/metacircular/mcdsl/jsonapi"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/health"
	"git.metacircular.net/metacircular/mcns/internal/records"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// REST serves the MCNS record API.
type REST struct {
	svc       *records.Service
	validator auth.Validator
	check     health.Checker
	logger    *slog.Logger
}

// NewREST builds the REST handler; validator checks bearer tokens (MCIAS).
func NewREST(svc *records.Service, validator auth.Validator, check health.Checker, logger *slog.Logger) *REST {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &REST{svc: svc, validator: validator, check: check, logger: logger}
}

// Handler returns the router.
func (h *REST) Handler() http.Handler {
	r := chi.NewRouter()
	r.Method(http.MethodGet, health.Path, health.Handler(h.check))
	r.Group(func(r chi.Router) {
		// Bearer tokens only: MCNS has no web UI and no CSRF protection,
		// so a browser's ambient cookie must not act here.
		r.Use(auth.Middleware(h.validator, auth.MiddlewareOptions{BearerOnly: true}))
		r.Get("/v1/zones", h.listZones)
		r.Post("/v1/zones", h.createZone)
		r.Get("/v1/zones/{zone}", h.getZone)
		r.Put("/v1/zones/{zone}", h.updateZone)
		r.Delete("/v1/zones/{zone}", h.deleteZone)
		r.Get("/v1/zones/{zone}/records", h.listRecords)
		r.Post("/v1/zones/{zone}/records", h.createRecord)
		r.Get("/v1/zones/{zone}/records/{id}", h.getRecord)
		r.Put("/v1/zones/{zone}/records/{id}", h.updateRecord)
		r.Delete("/v1/zones/{zone}/records/{id}", h.deleteRecord)
	})
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
	jsonapi.Error(w, code, msg)
}

// decode reads a JSON body strictly (jsonapi.Decode); bad input maps to 400.
func decode(w http.ResponseWriter, r *http.Request, dst any) error {
	return jsonapi.Decode(w, r, dst, store.ErrInvalid)
}

func caller(r *http.Request) *auth.Identity {
	id, _ := auth.IdentityFrom(r.Context())
	return id
}

// recordID parses the {id} path parameter.
func recordID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: id: %q is not a record id (a positive integer)", store.ErrInvalid, chi.URLParam(r, "id"))
	}
	return id, nil
}

// zoneBody is the JSON of a zone to create (name required) or update (no
// name: the path names the zone).
type zoneBody struct {
	Name       string `json:"name,omitempty"`
	PrimaryNS  string `json:"primary_ns"`
	AdminEmail string `json:"admin_email"`
	Refresh    uint32 `json:"refresh"`
	Retry      uint32 `json:"retry"`
	Expire     uint32 `json:"expire"`
	Minimum    uint32 `json:"minimum"`
	TTL        uint32 `json:"ttl"`
}

func (b zoneBody) spec(name string) records.ZoneSpec {
	return records.ZoneSpec{Name: name, PrimaryNS: b.PrimaryNS, AdminEmail: b.AdminEmail,
		Refresh: b.Refresh, Retry: b.Retry, Expire: b.Expire, Minimum: b.Minimum, TTL: b.TTL}
}

// recordBody is the JSON of a record to create or replace.
type recordBody struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	TTL   uint32 `json:"ttl"`
	Value string `json:"value"`
}

func (b recordBody) spec() records.RecordSpec {
	return records.RecordSpec{Name: b.Name, Type: b.Type, TTL: b.TTL, Value: b.Value}
}

func (h *REST) listZones(w http.ResponseWriter, r *http.Request) {
	zones, err := h.svc.ListZones(r.Context(), caller(r))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string][]store.Zone{"zones": zones})
}

func (h *REST) createZone(w http.ResponseWriter, r *http.Request) {
	var b zoneBody
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	z, err := h.svc.CreateZone(r.Context(), caller(r), b.spec(b.Name))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusCreated, z)
}

func (h *REST) getZone(w http.ResponseWriter, r *http.Request) {
	z, err := h.svc.GetZone(r.Context(), caller(r), chi.URLParam(r, "zone"))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, z)
}

func (h *REST) updateZone(w http.ResponseWriter, r *http.Request) {
	var b zoneBody
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	if b.Name != "" {
		h.fail(w, fmt.Errorf("%w: name: a zone cannot be renamed; the path names the zone", store.ErrInvalid))
		return
	}
	z, err := h.svc.UpdateZone(r.Context(), caller(r), b.spec(chi.URLParam(r, "zone")))
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, z)
}

func (h *REST) deleteZone(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.DeleteZone(r.Context(), caller(r), chi.URLParam(r, "zone")); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *REST) listRecords(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "name" && k != "type" {
			h.fail(w, fmt.Errorf("%w: query parameter %q is not a filter (name, type)", store.ErrInvalid, k))
			return
		}
	}
	list, err := h.svc.ListRecords(r.Context(), caller(r), chi.URLParam(r, "zone"),
		records.Filter{Name: q.Get("name"), Type: q.Get("type")})
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, map[string][]store.Record{"records": list})
}

func (h *REST) createRecord(w http.ResponseWriter, r *http.Request) {
	var b recordBody
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	rec, err := h.svc.CreateRecord(r.Context(), caller(r), chi.URLParam(r, "zone"), b.spec())
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusCreated, rec)
}

func (h *REST) getRecord(w http.ResponseWriter, r *http.Request) {
	id, err := recordID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	rec, err := h.svc.GetRecord(r.Context(), caller(r), chi.URLParam(r, "zone"), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, rec)
}

func (h *REST) updateRecord(w http.ResponseWriter, r *http.Request) {
	id, err := recordID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	var b recordBody
	if err := decode(w, r, &b); err != nil {
		h.fail(w, err)
		return
	}
	rec, err := h.svc.UpdateRecord(r.Context(), caller(r), chi.URLParam(r, "zone"), id, b.spec())
	if err != nil {
		h.fail(w, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, rec)
}

func (h *REST) deleteRecord(w http.ResponseWriter, r *http.Request) {
	id, err := recordID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.svc.DeleteRecord(r.Context(), caller(r), chi.URLParam(r, "zone"), id); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
