// Package authtest runs a small stand-in for MCIAS over real TLS on
// loopback, implementing the /v1/auth/login and /v1/token/validate contract
// of PLATFORM.md §5, so mcdsl packages can be tested before MCIAS exists and
// without importing it.
package authtest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/config"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

// User is an account known to the stand-in.
type User struct {
	Username    string
	Password    string
	AccountType string
	Roles       []string
	// DenyServices lists service_names whose logins are denied by policy.
	DenyServices []string
}

// LoginRecord is what a login request carried.
type LoginRecord struct {
	Username    string
	ServiceName string
	Tags        []string
}

// Server is the stand-in MCIAS.
type Server struct {
	URL    string
	CAFile string
	PKI    *tlstest.PKI

	mu       sync.Mutex
	users    map[string]User
	tokens   map[string]tokenInfo
	requests map[string]int
	logins   []LoginRecord
	ttl      time.Duration
}

type tokenInfo struct {
	user    User
	expires time.Time
}

// New starts the stand-in on 127.0.0.1 with a fresh test CA.
func New(t testing.TB) *Server {
	t.Helper()
	pki := tlstest.New(t)
	pair := pki.Issue(t, "mcias", "localhost", "127.0.0.1")
	s := &Server{
		CAFile:   pki.CAFile,
		PKI:      pki,
		users:    map[string]User{},
		tokens:   map[string]tokenInfo{},
		requests: map[string]int{},
		ttl:      time.Hour,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/login", s.login)
	mux.HandleFunc("POST /v1/token/validate", s.validate)
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = pki.ClientConfig().Clone()
	ts.TLS.RootCAs = nil
	ts.TLS.Certificates = []tls.Certificate{pair.TLS}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Config returns the [mcias] section a service would use to reach s.
func (s *Server) Config(service string, tags ...string) config.MCIAS {
	return config.MCIAS{ServerURL: s.URL, CACert: s.CAFile, ServiceName: service, Tags: tags}
}

// AddUser registers an account.
func (s *Server) AddUser(u User) {
	if u.AccountType == "" {
		u.AccountType = "human"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.Username] = u
}

// Token issues a token for a registered user without a login, as MCIAS does
// for system accounts.
func (s *Server) Token(username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked(s.users[username])
}

// Revoke invalidates a token immediately on the server side.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, token)
}

// Requests reports how many requests reached path.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// Logins returns the login requests seen so far.
func (s *Server) Logins() []LoginRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LoginRecord(nil), s.logins...)
}

func (s *Server) issueLocked(u User) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "tok-" + hex.EncodeToString(b)
	s.tokens[tok] = tokenInfo{user: u, expires: time.Now().Add(s.ttl).UTC().Truncate(time.Second)}
	return tok
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username    string   `json:"username"`
		Password    string   `json:"password"`
		TOTPCode    string   `json:"totp_code"`
		ServiceName string   `json:"service_name"`
		Tags        []string `json:"tags"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.URL.Path]++
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON"})
		return
	}
	s.logins = append(s.logins, LoginRecord{Username: req.Username, ServiceName: req.ServiceName, Tags: req.Tags})
	u, ok := s.users[req.Username]
	if !ok || u.Password != req.Password {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid credentials"})
		return
	}
	for _, d := range u.DenyServices {
		if d == req.ServiceName {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "denied by policy"})
			return
		}
	}
	tok := s.issueLocked(u)
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires_at": s.tokens[tok].expires})
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.URL.Path]++
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON"})
		return
	}
	info, ok := s.tokens[req.Token]
	if !ok || time.Now().After(info.expires) {
		writeJSON(w, http.StatusOK, map[string]bool{"valid": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"valid": true, "subject": "uuid-" + info.user.Username, "username": info.user.Username,
		"account_type": info.user.AccountType, "roles": info.user.Roles, "expires_at": info.expires,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
