package records

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcns/internal/dnsdata"
	"git.metacircular.net/metacircular/mcns/internal/rr"
	"git.metacircular.net/metacircular/mcns/internal/store"
)

// DefaultAgentAccounts is the agent list when the configuration names none:
// the MCP agent registers every service's name.
var DefaultAgentAccounts = []string{"mcp-agent"}

// Service is the zone and record API over a store.
//
// Authorization (PLATFORM.md §9):
//   - admin (MCIAS role): everything, including creating, updating and
//     deleting zones;
//   - agent (a system account whose username is in the agent list): create,
//     update and delete any record, but not zones;
//   - any other system account: create, update and delete only records
//     whose owner name is exactly "<username>.<zone>" — for a dot-free
//     username one label, equal to it, directly below the zone apex
//     (account mcq may manage mcq.svc.mcp.metacircular.net. in zone
//     svc.mcp.metacircular.net. and nothing else, not even names below
//     it); an update must find the record at that name and leave it there;
//   - every other authenticated caller (human users, guests): read only;
//   - no caller: nothing.
//
// Reads (list and get of zones and records) are open to every
// authenticated caller.
type Service struct {
	st     *store.Store
	agents map[string]bool
	logger *slog.Logger

	// writeMu serializes writes, so the ownership check of an update or a
	// delete and the write itself are atomic with respect to every other
	// API writer: no one can rename a record between the two.
	writeMu sync.Mutex
}

// New returns the service. agents are the system accounts that may manage
// every record; nil means DefaultAgentAccounts.
func New(st *store.Store, agents []string, logger *slog.Logger) *Service {
	if agents == nil {
		agents = DefaultAgentAccounts
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := make(map[string]bool, len(agents))
	for _, a := range agents {
		m[strings.ToLower(a)] = true
	}
	return &Service{st: st, agents: m, logger: logger}
}

// role is what a caller may do with records.
type role int

const (
	roleReader role = iota
	roleOwner       // a system account managing its own name
	roleAgent
	roleAdmin
)

func (s *Service) roleOf(c *auth.Identity) role {
	switch {
	case c.IsAdmin():
		return roleAdmin
	case c.IsSystem() && s.agents[strings.ToLower(c.Username)]:
		return roleAgent
	case c.IsSystem():
		return roleOwner
	}
	return roleReader
}

func authenticated(c *auth.Identity) error {
	if c == nil || c.Username == "" {
		return dnsdata.ErrUnauthenticated
	}
	return nil
}

// ownName is the one owner name a system account may manage in zone.
func ownName(c *auth.Identity, zone string) string {
	return strings.ToLower(c.Username) + "." + zone
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", dnsdata.ErrInvalid, fmt.Sprintf(format, args...))
}

// --- zones ---

// zoneName canonicalizes a zone reference from a request.
func zoneName(name string) (string, error) {
	if strings.TrimSpace(name) == "" {
		return "", invalid("zone: a zone name is required")
	}
	return rr.Zone(name)
}

// ListZones lists the zones (any authenticated caller).
func (s *Service) ListZones(ctx context.Context, c *auth.Identity) ([]dnsdata.Zone, error) {
	if err := authenticated(c); err != nil {
		return nil, err
	}
	return s.st.ListZones(ctx)
}

// GetZone returns one zone (any authenticated caller).
func (s *Service) GetZone(ctx context.Context, c *auth.Identity, name string) (dnsdata.Zone, error) {
	if err := authenticated(c); err != nil {
		return dnsdata.Zone{}, err
	}
	zone, err := zoneName(name)
	if err != nil {
		return dnsdata.Zone{}, err
	}
	return s.st.GetZone(ctx, zone)
}

func (s *Service) requireAdmin(c *auth.Identity) error {
	if err := authenticated(c); err != nil {
		return err
	}
	if s.roleOf(c) != roleAdmin {
		return fmt.Errorf("%w: zones are managed by admins", dnsdata.ErrForbidden)
	}
	return nil
}

// CreateZone creates a zone (admin only).
func (s *Service) CreateZone(ctx context.Context, c *auth.Identity, spec dnsdata.Spec) (dnsdata.Zone, error) {
	if err := s.requireAdmin(c); err != nil {
		return dnsdata.Zone{}, err
	}
	z := spec.Zone()
	if strings.TrimSpace(z.Name) == "" {
		return dnsdata.Zone{}, invalid("name: a zone name is required")
	}
	if err := rr.ValidateZone(&z); err != nil {
		return dnsdata.Zone{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	out, err := s.st.CreateZone(ctx, z)
	if err != nil {
		return dnsdata.Zone{}, err
	}
	s.logger.Info("zone created", "zone", out.Name, "primary_ns", out.PrimaryNS, "serial", out.Serial, "by", c.Username)
	return out, nil
}

// UpdateZone changes the SOA fields of zone spec.Name and bumps its serial
// (admin only). Empty and zero fields of spec keep the zone's current
// value, so changing the TTL cannot reset the primary name server.
func (s *Service) UpdateZone(ctx context.Context, c *auth.Identity, spec dnsdata.Spec) (dnsdata.Zone, error) {
	if err := s.requireAdmin(c); err != nil {
		return dnsdata.Zone{}, err
	}
	name, err := zoneName(spec.Name)
	if err != nil {
		return dnsdata.Zone{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	z, err := s.st.GetZone(ctx, name)
	if err != nil {
		return dnsdata.Zone{}, err
	}
	for _, f := range []struct {
		dst *string
		v   string
	}{{&z.PrimaryNS, spec.PrimaryNS}, {&z.AdminEmail, spec.AdminEmail}} {
		if strings.TrimSpace(f.v) != "" {
			*f.dst = f.v
		}
	}
	for _, f := range []struct {
		dst *uint32
		v   uint32
	}{{&z.Refresh, spec.Refresh}, {&z.Retry, spec.Retry}, {&z.Expire, spec.Expire}, {&z.Minimum, spec.Minimum}, {&z.TTL, spec.TTL}} {
		if f.v != 0 {
			*f.dst = f.v
		}
	}
	if err := rr.ValidateZone(&z); err != nil {
		return dnsdata.Zone{}, err
	}
	out, err := s.st.UpdateZone(ctx, z)
	if err != nil {
		return dnsdata.Zone{}, err
	}
	s.logger.Info("zone updated", "zone", out.Name, "primary_ns", out.PrimaryNS, "admin_email", out.AdminEmail,
		"ttl", out.TTL, "minimum", out.Minimum, "serial", out.Serial, "by", c.Username)
	return out, nil
}

// DeleteZone deletes a zone and all its records (admin only).
func (s *Service) DeleteZone(ctx context.Context, c *auth.Identity, name string) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	zone, err := zoneName(name)
	if err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.st.DeleteZone(ctx, zone); err != nil {
		return err
	}
	s.logger.Info("zone deleted", "zone", zone, "by", c.Username)
	return nil
}

// EnsureZone creates the zone if it does not exist and leaves an existing
// one as it is. It has no caller: it is for the zones the configuration
// seeds at init and start.
func (s *Service) EnsureZone(ctx context.Context, spec dnsdata.Spec) (dnsdata.Zone, bool, error) {
	z := spec.Zone()
	if err := rr.ValidateZone(&z); err != nil {
		return dnsdata.Zone{}, false, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.st.GetZone(ctx, z.Name)
	if err == nil {
		return cur, false, nil
	}
	if !errors.Is(err, dnsdata.ErrNotFound) {
		return dnsdata.Zone{}, false, err
	}
	out, err := s.st.CreateZone(ctx, z)
	if err != nil {
		return dnsdata.Zone{}, false, err
	}
	s.logger.Info("zone created", "zone", out.Name, "primary_ns", out.PrimaryNS, "serial", out.Serial, "by", "configuration")
	return out, true, nil
}

// --- records ---

// ListRecords lists a zone's records, optionally filtered by owner name and
// type (any authenticated caller).
func (s *Service) ListRecords(ctx context.Context, c *auth.Identity, zoneRef string, f dnsdata.Filter) ([]dnsdata.Record, error) {
	if err := authenticated(c); err != nil {
		return nil, err
	}
	zone, err := zoneName(zoneRef)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.GetZone(ctx, zone); err != nil {
		return nil, err
	}
	name := ""
	if strings.TrimSpace(f.Name) != "" {
		if name, err = rr.Name(zone, f.Name); err != nil {
			return nil, err
		}
	}
	typ := strings.ToUpper(strings.TrimSpace(f.Type))
	if typ != "" && !slices.Contains(rr.Types, typ) {
		return nil, invalid("type: %q is not supported (%s)", f.Type, strings.Join(rr.Types, ", "))
	}
	return s.st.Records(ctx, zone, name, typ)
}

// GetRecord returns one record of a zone (any authenticated caller).
func (s *Service) GetRecord(ctx context.Context, c *auth.Identity, zoneRef string, id int64) (dnsdata.Record, error) {
	if err := authenticated(c); err != nil {
		return dnsdata.Record{}, err
	}
	zone, err := zoneName(zoneRef)
	if err != nil {
		return dnsdata.Record{}, err
	}
	if err := validID(id); err != nil {
		return dnsdata.Record{}, err
	}
	return s.st.GetRecord(ctx, zone, id)
}

func validID(id int64) error {
	if id <= 0 {
		return invalid("id: a record id is a positive integer")
	}
	return nil
}

// writer checks that c may write records at all and returns its role.
func (s *Service) writer(c *auth.Identity) (role, error) {
	if err := authenticated(c); err != nil {
		return roleReader, err
	}
	r := s.roleOf(c)
	if r == roleReader {
		return r, fmt.Errorf("%w: %s may only read records", dnsdata.ErrForbidden, c.Username)
	}
	return r, nil
}

// mayOwn checks that a caller with role r may hold a record named name in
// zone.
func mayOwn(r role, c *auth.Identity, zone, name string) error {
	if r == roleOwner && name != ownName(c, zone) {
		return fmt.Errorf("%w: system account %s may only manage records named %s", dnsdata.ErrForbidden, c.Username, ownName(c, zone))
	}
	return nil
}

// prepare resolves the zone and validates spec into a record of it.
func (s *Service) prepare(ctx context.Context, zoneRef string, spec dnsdata.RecordSpec) (dnsdata.Record, error) {
	zone, err := zoneName(zoneRef)
	if err != nil {
		return dnsdata.Record{}, err
	}
	z, err := s.st.GetZone(ctx, zone)
	if err != nil {
		return dnsdata.Record{}, err
	}
	rec := dnsdata.Record{Name: spec.Name, Type: spec.Type, TTL: spec.TTL, Value: spec.Value}
	if err := rr.Validate(z.Name, z.TTL, &rec); err != nil {
		return dnsdata.Record{}, err
	}
	return rec, nil
}

// CreateRecord adds a record to a zone (admin, agents, and system accounts
// for their own name).
func (s *Service) CreateRecord(ctx context.Context, c *auth.Identity, zoneRef string, spec dnsdata.RecordSpec) (dnsdata.Record, error) {
	r, err := s.writer(c)
	if err != nil {
		return dnsdata.Record{}, err
	}
	rec, err := s.prepare(ctx, zoneRef, spec)
	if err != nil {
		return dnsdata.Record{}, err
	}
	if err := mayOwn(r, c, rec.Zone, rec.Name); err != nil {
		return dnsdata.Record{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	out, err := s.st.CreateRecord(ctx, rec)
	if err != nil {
		return dnsdata.Record{}, err
	}
	s.logger.Info("record created", "zone", out.Zone, "id", out.ID, "name", out.Name, "type", out.Type,
		"ttl", out.TTL, "value", out.Value, "by", c.Username)
	return out, nil
}

// UpdateRecord replaces record id of a zone. A system account that is not
// an agent must own the record both as it is and as it will be.
func (s *Service) UpdateRecord(ctx context.Context, c *auth.Identity, zoneRef string, id int64, spec dnsdata.RecordSpec) (dnsdata.Record, error) {
	r, err := s.writer(c)
	if err != nil {
		return dnsdata.Record{}, err
	}
	if err := validID(id); err != nil {
		return dnsdata.Record{}, err
	}
	rec, err := s.prepare(ctx, zoneRef, spec)
	if err != nil {
		return dnsdata.Record{}, err
	}
	rec.ID = id
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old, err := s.st.GetRecord(ctx, rec.Zone, id)
	if err != nil {
		return dnsdata.Record{}, err
	}
	if err := mayOwn(r, c, old.Zone, old.Name); err != nil {
		return dnsdata.Record{}, err
	}
	if err := mayOwn(r, c, rec.Zone, rec.Name); err != nil {
		return dnsdata.Record{}, err
	}
	out, err := s.st.UpdateRecord(ctx, rec)
	if err != nil {
		return dnsdata.Record{}, err
	}
	s.logger.Info("record updated", "zone", out.Zone, "id", out.ID, "name", out.Name, "type", out.Type,
		"ttl", out.TTL, "value", out.Value, "old_name", old.Name, "old_type", old.Type, "old_value", old.Value, "by", c.Username)
	return out, nil
}

// DeleteRecord removes record id of a zone (admin, agents, and system
// accounts for their own name).
func (s *Service) DeleteRecord(ctx context.Context, c *auth.Identity, zoneRef string, id int64) error {
	r, err := s.writer(c)
	if err != nil {
		return err
	}
	zone, err := zoneName(zoneRef)
	if err != nil {
		return err
	}
	if err := validID(id); err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old, err := s.st.GetRecord(ctx, zone, id)
	if err != nil {
		return err
	}
	if err := mayOwn(r, c, old.Zone, old.Name); err != nil {
		return err
	}
	if _, err := s.st.DeleteRecord(ctx, zone, id); err != nil {
		return err
	}
	s.logger.Info("record deleted", "zone", old.Zone, "id", old.ID, "name", old.Name, "type", old.Type,
		"value", old.Value, "by", c.Username)
	return nil
}
