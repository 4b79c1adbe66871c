package acmeclient_test

import (
	"strings"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/acmeclient"
)

// TestNewChecksConfig: a bad configuration fails at New, naming what is
// wrong; the end-to-end tests against a real Metacrypt, MCIAS and MCNS
// are in metacrypt/internal/server (TestACMEClient).
func TestNewChecksConfig(t *testing.T) {
	good := acmeclient.Config{
		Directory: "https://metacrypt.example:8443/v1/pki/pki/acme/services/directory",
		Metacrypt: "metacrypt.example:9443", Token: "t",
	}
	if _, err := acmeclient.New(good); err != nil {
		t.Fatal(err)
	}
	for want, mutate := range map[string]func(*acmeclient.Config){
		"https URL": func(c *acmeclient.Config) {
			c.Directory = "http://metacrypt.example/v1/pki/pki/acme/services/directory"
		},
		"/v1/pki/":  func(c *acmeclient.Config) { c.Directory = "https://metacrypt.example/acme/directory" },
		"Metacrypt": func(c *acmeclient.Config) { c.Metacrypt = "" },
		"Token":     func(c *acmeclient.Config) { c.Token = "" },
		"read CA":   func(c *acmeclient.Config) { c.CACert = "/nonexistent/ca.pem" },
		"no PEM":    func(c *acmeclient.Config) { c.CACert = "acmeclient_test.go" },
	} {
		c := good
		mutate(&c)
		if _, err := acmeclient.New(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
	c, _ := acmeclient.New(good)
	for _, r := range []acmeclient.Request{
		{},
		{Names: []string{"x.example"}, Challenge: "tls-alpn-01"},
		{Names: []string{"x.example"}, KeyType: "dsa"},
	} {
		if _, err := c.Obtain(t.Context(), r); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
}
