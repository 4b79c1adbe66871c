package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// linker builds every URL of one directory: scheme and host from the
// request (what the client used), then /v1/pki/{mount}/acme/{issuer}.
type linker struct {
	base string
}

func linkerFor(r *http.Request) linker {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return linker{base: scheme + "://" + r.Host + "/v1/pki/" + chi.URLParam(r, "mount") + "/acme/" + chi.URLParam(r, "issuer")}
}

// requestURL is the URL the request was sent to, as a JWS must name it.
func requestURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + r.URL.Path
}

func (l linker) directory() string            { return l.base + "/directory" }
func (l linker) newNonce() string             { return l.base + "/new-nonce" }
func (l linker) newAccount() string           { return l.base + "/new-account" }
func (l linker) newOrder() string             { return l.base + "/new-order" }
func (l linker) revokeCert() string           { return l.base + "/revoke-cert" }
func (l linker) keyChange() string            { return l.base + "/key-change" }
func (l linker) renewalInfo() string          { return l.base + "/renewal-info" }
func (l linker) account(id string) string     { return l.base + "/account/" + id }
func (l linker) orders(id string) string      { return l.base + "/account/" + id + "/orders" }
func (l linker) order(id string) string       { return l.base + "/order/" + id }
func (l linker) finalize(id string) string    { return l.base + "/order/" + id + "/finalize" }
func (l linker) authz(id string) string       { return l.base + "/authz/" + id }
func (l linker) certificate(id string) string { return l.base + "/cert/" + id }
func (l linker) challenge(authz string, t acme.ChallengeType) string {
	return l.base + "/chall/" + authz + "/" + string(t)
}

// accountID is the account ID a kid names, if it is an account URL of
// this directory.
func (l linker) accountID(kid string) (string, bool) {
	id, ok := strings.CutPrefix(kid, l.base+"/account/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}
