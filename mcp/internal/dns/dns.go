// Package dns registers a node's service names in MCNS through its record
// API (mcns/client) as the agent's system account, which MCNS lets manage
// any record. Names are A (or AAAA) records in the service zone svc.D;
// Ensure is idempotent and Remove deletes only the value it is given, so
// an agent never removes another node's address.
package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcnsclient "git.metacircular.net/metacircular/mcns/client"
)

// MCNS is the platform's DNS service.
type MCNS struct {
	Client *mcnsclient.Client
	// Zone is the service zone (svc.D).
	Zone string
}

// InZone reports whether name is under the zone (MCNS serves it).
func (m *MCNS) InZone(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	zone := strings.ToLower(strings.TrimSuffix(m.Zone, "."))
	return strings.HasSuffix(name, "."+zone)
}

func (m *MCNS) relative(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	return strings.TrimSuffix(name, "."+strings.ToLower(strings.TrimSuffix(m.Zone, ".")))
}

func recordType(value string) (string, error) {
	a, err := netip.ParseAddr(value)
	if err != nil {
		return "", fmt.Errorf("dns value %q is not an IP address", value)
	}
	if a.Is4() {
		return "A", nil
	}
	return "AAAA", nil
}

// Ensure makes name resolve to value, creating the record if needed.
func (m *MCNS) Ensure(ctx context.Context, name, value string) error {
	typ, err := recordType(value)
	if err != nil {
		return err
	}
	rel := m.relative(name)
	have, err := m.Client.ListRecords(ctx, m.Zone, mcnsclient.Filter{Name: rel, Type: typ})
	if err != nil {
		return fmt.Errorf("mcns: list %s: %w", name, err)
	}
	for _, r := range have {
		if r.Value == value {
			return nil
		}
	}
	if _, err := m.Client.CreateRecord(ctx, m.Zone, mcnsclient.RecordFields{Name: rel, Type: typ, Value: value}); err != nil &&
		apierr.KindOf(err) != apierr.Conflict {
		return fmt.Errorf("mcns: create %s %s %s: %w", name, typ, value, err)
	}
	return nil
}

// Has reports whether name resolves to value in MCNS.
func (m *MCNS) Has(ctx context.Context, name, value string) (bool, error) {
	typ, err := recordType(value)
	if err != nil {
		return false, err
	}
	have, err := m.Client.ListRecords(ctx, m.Zone, mcnsclient.Filter{Name: m.relative(name), Type: typ})
	if err != nil {
		return false, fmt.Errorf("mcns: list %s: %w", name, err)
	}
	for _, r := range have {
		if r.Value == value {
			return true, nil
		}
	}
	return false, nil
}

// Remove deletes the record name → value; a missing one is no error.
func (m *MCNS) Remove(ctx context.Context, name, value string) error {
	typ, err := recordType(value)
	if err != nil {
		return err
	}
	have, err := m.Client.ListRecords(ctx, m.Zone, mcnsclient.Filter{Name: m.relative(name), Type: typ})
	if err != nil {
		return fmt.Errorf("mcns: list %s: %w", name, err)
	}
	for _, r := range have {
		if r.Value != value {
			continue
		}
		if err := m.Client.DeleteRecord(ctx, m.Zone, r.ID); err != nil && apierr.KindOf(err) != apierr.NotFound {
			return fmt.Errorf("mcns: delete %s: %w", name, err)
		}
	}
	return nil
}
