package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"git.metacircular.net/metacircular/mcdsl/restclient"
	"git.metacircular.net/metacircular/mcns/client"
)

// restClient drives MCNS's REST API the way a REST user does: the
// contract tests check the generated gateway through it.
type restClient struct {
	rc *restclient.Client
}

func newRESTClient(server, caFile, token string) (*restClient, error) {
	rc, err := restclient.New("mcns", server, caFile, token)
	if err != nil {
		return nil, err
	}
	return &restClient{rc: rc}, nil
}

func (c *restClient) do(ctx context.Context, method, path string, body, out any) error {
	return c.rc.Do(ctx, method, path, body, out)
}

func esc(s string) string { return url.PathEscape(s) }

// Health checks GET /v1/health (no token needed).
func (c *restClient) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/health", nil, nil)
}

// ListZones lists the zones.
func (c *restClient) ListZones(ctx context.Context) ([]client.Zone, error) {
	var out struct {
		Zones []client.Zone `json:"zones"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/zones", nil, &out)
	return out.Zones, err
}

// GetZone returns one zone.
func (c *restClient) GetZone(ctx context.Context, zone string) (client.Zone, error) {
	var z client.Zone
	err := c.do(ctx, http.MethodGet, "/v1/zones/"+esc(zone), nil, &z)
	return z, err
}

// CreateZone creates a zone (admin).
func (c *restClient) CreateZone(ctx context.Context, name string, f client.ZoneFields) (client.Zone, error) {
	body := struct {
		Name string `json:"name"`
		client.ZoneFields
	}{name, f}
	var z client.Zone
	err := c.do(ctx, http.MethodPost, "/v1/zones", body, &z)
	return z, err
}

// UpdateZone changes the SOA fields that are set and bumps the serial
// (admin).
func (c *restClient) UpdateZone(ctx context.Context, zone string, f client.ZoneFields) (client.Zone, error) {
	var z client.Zone
	err := c.do(ctx, http.MethodPut, "/v1/zones/"+esc(zone), f, &z)
	return z, err
}

// DeleteZone deletes a zone and its records (admin).
func (c *restClient) DeleteZone(ctx context.Context, zone string) error {
	return c.do(ctx, http.MethodDelete, "/v1/zones/"+esc(zone), nil, nil)
}

// ListRecords lists a zone's records.
func (c *restClient) ListRecords(ctx context.Context, zone string, f client.Filter) ([]client.Record, error) {
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
		Records []client.Record `json:"records"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Records, err
}

func recordPath(zone string, id int64) string {
	return "/v1/zones/" + esc(zone) + "/records/" + strconv.FormatInt(id, 10)
}

// GetRecord returns one record.
func (c *restClient) GetRecord(ctx context.Context, zone string, id int64) (client.Record, error) {
	var r client.Record
	err := c.do(ctx, http.MethodGet, recordPath(zone, id), nil, &r)
	return r, err
}

// CreateRecord adds a record to a zone.
func (c *restClient) CreateRecord(ctx context.Context, zone string, f client.RecordFields) (client.Record, error) {
	var r client.Record
	err := c.do(ctx, http.MethodPost, "/v1/zones/"+esc(zone)+"/records", f, &r)
	return r, err
}

// UpdateRecord replaces a record.
func (c *restClient) UpdateRecord(ctx context.Context, zone string, id int64, f client.RecordFields) (client.Record, error) {
	var r client.Record
	err := c.do(ctx, http.MethodPut, recordPath(zone, id), f, &r)
	return r, err
}

// DeleteRecord removes a record.
func (c *restClient) DeleteRecord(ctx context.Context, zone string, id int64) error {
	return c.do(ctx, http.MethodDelete, recordPath(zone, id), nil, nil)
}
