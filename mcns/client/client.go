// Package client is the public Go client for the MCNS REST API: zones and
// records. mcnsctl is built on it; other programs (the MCP agent) may
// import it. Tokens are MCIAS tokens: log in to MCIAS (mcdsl/auth.Client
// or mcias/client) and pass the token here.
package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"git.metacircular.net/metacircular/mcdsl/restclient"
)

// Error is an error answer from the server.
type Error = restclient.Error

// StatusOf returns the HTTP status of an *Error, or 0.
func StatusOf(err error) int { return restclient.StatusOf(err) }

// Client calls one MCNS server.
type Client struct {
	rc *restclient.Client
}

// New returns a client for server (https://host:port) trusting caFile (or
// the system roots when empty); token may be empty until it is set.
func New(server, caFile, token string) (*Client, error) {
	rc, err := restclient.New("mcns", server, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{rc: rc}, nil
}

// SetToken sets the bearer token used for authenticated calls.
func (c *Client) SetToken(tok string) { c.rc.SetToken(tok) }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.rc.Do(ctx, method, path, body, out)
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
