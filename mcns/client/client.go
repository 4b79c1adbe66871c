// Package client is the public Go client for MCNS's record API: zones and
// records, over gRPC (mcns.v1). mcnsctl is built on it; other programs
// (the MCP agent) import it. Tokens are MCIAS tokens: log in to MCIAS
// (mcias/client or mcdsl/auth) and pass the token here.
package client

import (
	"context"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	mcnsv1 "git.metacircular.net/metacircular/mcns/gen/mcns/v1"
)

// KindOf is the kind of a failed call's error (apierr.NotFound,
// apierr.Denied, ...).
func KindOf(err error) apierr.Kind { return apierr.KindOf(err) }

// Client calls one MCNS server.
type Client struct {
	conn    *grpcclient.Conn
	zones   mcnsv1.ZoneServiceClient
	records mcnsv1.RecordServiceClient
}

// New returns a client for MCNS's gRPC address (host:port) trusting caFile
// (or the system roots when empty); token may be empty until SetToken.
// It connects on the first call.
func New(addr, caFile, token string) (*Client, error) {
	conn, err := grpcclient.Dial("mcns", addr, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, zones: mcnsv1.NewZoneServiceClient(conn), records: mcnsv1.NewRecordServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// SetToken sets the bearer token used for authenticated calls.
func (c *Client) SetToken(tok string) { c.conn.SetToken(tok) }

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

func zoneOf(z *mcnsv1.Zone) Zone {
	return Zone{
		Name: z.GetName(), PrimaryNS: z.GetPrimaryNs(), AdminEmail: z.GetAdminEmail(), Serial: z.GetSerial(),
		Refresh: z.GetRefresh(), Retry: z.GetRetry(), Expire: z.GetExpire(), Minimum: z.GetMinimum(), TTL: z.GetTtl(),
		CreatedAt: z.GetCreatedAt().AsTime(), UpdatedAt: z.GetUpdatedAt().AsTime(),
	}
}

func recordOf(r *mcnsv1.Record) Record {
	return Record{
		ID: r.GetId(), Zone: r.GetZone(), Name: r.GetName(), Type: r.GetType(), TTL: r.GetTtl(), Value: r.GetValue(),
		CreatedAt: r.GetCreatedAt().AsTime(), UpdatedAt: r.GetUpdatedAt().AsTime(),
	}
}

func (f RecordFields) pb() *mcnsv1.RecordFields {
	return &mcnsv1.RecordFields{Name: f.Name, Type: f.Type, Ttl: f.TTL, Value: f.Value}
}

// ListZones lists the zones.
func (c *Client) ListZones(ctx context.Context) ([]Zone, error) {
	resp, err := c.zones.ListZones(ctx, &mcnsv1.ListZonesRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Zone, 0, len(resp.GetZones()))
	for _, z := range resp.GetZones() {
		out = append(out, zoneOf(z))
	}
	return out, nil
}

// GetZone returns one zone.
func (c *Client) GetZone(ctx context.Context, zone string) (Zone, error) {
	resp, err := c.zones.GetZone(ctx, &mcnsv1.GetZoneRequest{Name: zone})
	if err != nil {
		return Zone{}, c.conn.Err(err)
	}
	return zoneOf(resp.GetZone()), nil
}

// CreateZone creates a zone (admin).
func (c *Client) CreateZone(ctx context.Context, name string, f ZoneFields) (Zone, error) {
	resp, err := c.zones.CreateZone(ctx, &mcnsv1.CreateZoneRequest{
		Name: name, PrimaryNs: f.PrimaryNS, AdminEmail: f.AdminEmail, Refresh: f.Refresh,
		Retry: f.Retry, Expire: f.Expire, Minimum: f.Minimum, Ttl: f.TTL,
	})
	if err != nil {
		return Zone{}, c.conn.Err(err)
	}
	return zoneOf(resp.GetZone()), nil
}

// UpdateZone changes the SOA fields that are set and bumps the serial
// (admin).
func (c *Client) UpdateZone(ctx context.Context, zone string, f ZoneFields) (Zone, error) {
	resp, err := c.zones.UpdateZone(ctx, &mcnsv1.UpdateZoneRequest{Name: zone, Fields: &mcnsv1.ZoneFields{
		PrimaryNs: f.PrimaryNS, AdminEmail: f.AdminEmail, Refresh: f.Refresh,
		Retry: f.Retry, Expire: f.Expire, Minimum: f.Minimum, Ttl: f.TTL,
	}})
	if err != nil {
		return Zone{}, c.conn.Err(err)
	}
	return zoneOf(resp.GetZone()), nil
}

// DeleteZone deletes a zone and its records (admin).
func (c *Client) DeleteZone(ctx context.Context, zone string) error {
	_, err := c.zones.DeleteZone(ctx, &mcnsv1.DeleteZoneRequest{Name: zone})
	return c.conn.Err(err)
}

// ListRecords lists a zone's records.
func (c *Client) ListRecords(ctx context.Context, zone string, f Filter) ([]Record, error) {
	resp, err := c.records.ListRecords(ctx, &mcnsv1.ListRecordsRequest{Zone: zone, Name: f.Name, Type: f.Type})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Record, 0, len(resp.GetRecords()))
	for _, r := range resp.GetRecords() {
		out = append(out, recordOf(r))
	}
	return out, nil
}

// GetRecord returns one record.
func (c *Client) GetRecord(ctx context.Context, zone string, id int64) (Record, error) {
	resp, err := c.records.GetRecord(ctx, &mcnsv1.GetRecordRequest{Zone: zone, Id: id})
	if err != nil {
		return Record{}, c.conn.Err(err)
	}
	return recordOf(resp.GetRecord()), nil
}

// CreateRecord adds a record to a zone.
func (c *Client) CreateRecord(ctx context.Context, zone string, f RecordFields) (Record, error) {
	resp, err := c.records.CreateRecord(ctx, &mcnsv1.CreateRecordRequest{Zone: zone, Record: f.pb()})
	if err != nil {
		return Record{}, c.conn.Err(err)
	}
	return recordOf(resp.GetRecord()), nil
}

// UpdateRecord replaces a record.
func (c *Client) UpdateRecord(ctx context.Context, zone string, id int64, f RecordFields) (Record, error) {
	resp, err := c.records.UpdateRecord(ctx, &mcnsv1.UpdateRecordRequest{Zone: zone, Id: id, Record: f.pb()})
	if err != nil {
		return Record{}, c.conn.Err(err)
	}
	return recordOf(resp.GetRecord()), nil
}

// DeleteRecord removes a record.
func (c *Client) DeleteRecord(ctx context.Context, zone string, id int64) error {
	_, err := c.records.DeleteRecord(ctx, &mcnsv1.DeleteRecordRequest{Zone: zone, Id: id})
	return c.conn.Err(err)
}
