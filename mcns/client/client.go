// Package client is the public Go client for the MCNS REST API: zones and
// records. mcnsctl is built on it; other programs (the MCP agent) may
// import it. Tokens are MCIAS tokens: log in to MCIAS (mcdsl/auth.Client
// or mcias/client) and pass the token here.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// Error is an error answer from MCNS.
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

// Client calls one MCNS server.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// New returns a client for server (https://host:port) trusting caFile (or
// the system roots when empty), authenticating with an MCIAS token.
func New(server, caFile, token string) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("mcns client: server %q must be an https:// URL", server)
	}
	tlsCfg, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, fmt.Errorf("mcns client: %w", err)
	}
	return &Client{
		base:  strings.TrimRight(server, "/"),
		http:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}},
		token: token,
	}, nil
}

// SetToken sets the bearer token used for every call.
func (c *Client) SetToken(tok string) { c.token = tok }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
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
	resp, err := c.http.Do(req) //nolint:gosec // the operator names the MCNS server
	if err != nil {
		return fmt.Errorf("mcns %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("mcns %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return &Error{Status: resp.StatusCode, Message: auth.ErrorMessage(data)}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("mcns %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// Zone is a zone and its SOA fields.
type Zone struct {
	Name       string    `json:"name"`
	PrimaryNS  string    `json:"primary_ns"`
	AdminEmail string    `json:"admin_email"`
	Serial     uint32    `json:"serial"`
	Refresh    uint32    `json:"refresh"`
	Retry      uint32    `json:"retry"`
	Expire     uint32    `json:"expire"`
	Minimum    uint32    `json:"minimum"`
	TTL        uint32    `json:"ttl"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ZoneFields are the settable SOA fields. Zero values take MCNS's defaults
// on create and keep the current value on update.
type ZoneFields struct {
	PrimaryNS  string `json:"primary_ns,omitempty"`
	AdminEmail string `json:"admin_email,omitempty"`
	Refresh    uint32 `json:"refresh,omitempty"`
	Retry      uint32 `json:"retry,omitempty"`
	Expire     uint32 `json:"expire,omitempty"`
	Minimum    uint32 `json:"minimum,omitempty"`
	TTL        uint32 `json:"ttl,omitempty"`
}

// Record is one resource record.
type Record struct {
	ID        int64     `json:"id"`
	Zone      string    `json:"zone"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	TTL       uint32    `json:"ttl"`
	Value     string    `json:"value"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RecordFields are a record to create or its replacement. Name is relative
// to the zone, "@" for the apex, or absolute with a trailing dot; TTL 0
// means the zone's default.
type RecordFields struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	TTL   uint32 `json:"ttl,omitempty"`
	Value string `json:"value"`
}

// Filter narrows ListRecords; empty fields match everything.
type Filter struct {
	Name string
	Type string
}

// Health checks GET /v1/health (no token needed).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/health", nil, nil)
}

// ListZones lists the zones.
func (c *Client) ListZones(ctx context.Context) ([]Zone, error) {
	var out struct {
		Zones []Zone `json:"zones"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/zones", nil, &out)
	return out.Zones, err
}

// GetZone returns one zone.
func (c *Client) GetZone(ctx context.Context, zone string) (Zone, error) {
	var z Zone
	err := c.do(ctx, http.MethodGet, "/v1/zones/"+esc(zone), nil, &z)
	return z, err
}

// CreateZone creates a zone (admin).
func (c *Client) CreateZone(ctx context.Context, name string, f ZoneFields) (Zone, error) {
	body := struct {
		Name string `json:"name"`
		ZoneFields
	}{name, f}
	var z Zone
	err := c.do(ctx, http.MethodPost, "/v1/zones", body, &z)
	return z, err
}

// UpdateZone changes the SOA fields that are set and bumps the serial
// (admin).
func (c *Client) UpdateZone(ctx context.Context, zone string, f ZoneFields) (Zone, error) {
	var z Zone
	err := c.do(ctx, http.MethodPut, "/v1/zones/"+esc(zone), f, &z)
	return z, err
}

// DeleteZone deletes a zone and its records (admin).
func (c *Client) DeleteZone(ctx context.Context, zone string) error {
	return c.do(ctx, http.MethodDelete, "/v1/zones/"+esc(zone), nil, nil)
}

// ListRecords lists a zone's records.
func (c *Client) ListRecords(ctx context.Context, zone string, f Filter) ([]Record, error) {
	q := url.Values{}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	path := "/v1/zones/" + esc(zone) + "/records"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Records []Record `json:"records"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Records, err
}

func recordPath(zone string, id int64) string {
	return "/v1/zones/" + esc(zone) + "/records/" + strconv.FormatInt(id, 10)
}

// GetRecord returns one record.
func (c *Client) GetRecord(ctx context.Context, zone string, id int64) (Record, error) {
	var r Record
	err := c.do(ctx, http.MethodGet, recordPath(zone, id), nil, &r)
	return r, err
}

// CreateRecord adds a record to a zone.
func (c *Client) CreateRecord(ctx context.Context, zone string, f RecordFields) (Record, error) {
	var r Record
	err := c.do(ctx, http.MethodPost, "/v1/zones/"+esc(zone)+"/records", f, &r)
	return r, err
}

// UpdateRecord replaces a record.
func (c *Client) UpdateRecord(ctx context.Context, zone string, id int64, f RecordFields) (Record, error) {
	var r Record
	err := c.do(ctx, http.MethodPut, recordPath(zone, id), f, &r)
	return r, err
}

// DeleteRecord removes a record.
func (c *Client) DeleteRecord(ctx context.Context, zone string, id int64) error {
	return c.do(ctx, http.MethodDelete, recordPath(zone, id), nil, nil)
}
