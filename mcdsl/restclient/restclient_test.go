package restclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

func TestDo(t *testing.T) {
	pki := tlstest.New(t)
	pair := pki.Issue(t, "svc", "127.0.0.1")
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"authentication required"}`))
			return
		}
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		_ = json.NewEncoder(w).Encode(map[string]string{"echo": in["v"]})
	}))
	ts.TLS = pki.ClientConfig().Clone()
	ts.TLS.RootCAs = nil
	ts.TLS.Certificates = append(ts.TLS.Certificates, pair.TLS)
	ts.StartTLS()
	defer ts.Close()

	c, err := New("test", ts.URL, pki.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = c.Do(ctx, http.MethodPost, "/", map[string]string{"v": "x"}, nil)
	if StatusOf(err) != http.StatusUnauthorized || err.Error() != "authentication required (HTTP 401)" {
		t.Fatalf("unauthenticated: %v", err)
	}
	c.SetToken("tok")
	var out map[string]string
	if err := c.Do(ctx, http.MethodPost, "/", map[string]string{"v": "x"}, &out); err != nil || out["echo"] != "x" {
		t.Fatalf("do: %v %v", out, err)
	}
	if _, err := New("test", "http://plain.example", "", ""); err == nil {
		t.Fatal("plain http accepted")
	}
}
