// Package restclient is the shared core of the platform's public Go
// clients (mcias/client, mcns/client, ...): a TLS 1.3 HTTP client for one
// https:// server, bearer-token authentication, JSON requests and answers,
// and platform error bodies turned into *Error values.
package restclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// maxAnswer bounds an answer body.
const maxAnswer = 16 << 20

// Error is an error answer from a platform service.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// StatusOf returns the HTTP status of an *Error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Client calls one service.
type Client struct {
	name  string
	base  string
	http  *http.Client
	token string
}

// New returns a client named name (for error messages) for server
// (https://host:port) trusting caFile, or the system roots when empty.
func New(name, server, caFile, token string) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%s client: server %q must be an https:// URL", name, server)
	}
	tlsCfg, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", name, err)
	}
	return &Client{
		name: name,
		base: strings.TrimRight(server, "/"),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
		}},
		token: token,
	}, nil
}

// SetToken sets the bearer token sent with every call.
func (c *Client) SetToken(tok string) { c.token = tok }

// Do sends body (JSON, when not nil) to path and decodes a JSON answer into
// out (when not nil). Answers of 300 and above come back as *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req) //nolint:gosec // the operator names the server
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", c.name, method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", c.name, method, path, err)
	}
	if resp.StatusCode >= 300 {
		return &Error{Status: resp.StatusCode, Message: auth.ErrorMessage(data)}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s %s: decode answer: %w", c.name, method, path, err)
	}
	return nil
}
