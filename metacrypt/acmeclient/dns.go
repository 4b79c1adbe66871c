package acmeclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	mcns "git.metacircular.net/metacircular/mcns/client"
)

// challengeTTL is the TTL of the TXT records written for dns-01.
const challengeTTL = 60

// presentDNS writes the dns-01 TXT record of name into the MCNS zone
// that holds it, waits until DNSResolvers serve it, and returns the
// record's removal.
func (c *Client) presentDNS(ctx context.Context, name, value string) (func(), error) {
	if c.cfg.MCNS == "" {
		return nil, errors.New("acmeclient: dns-01 needs MCNS (its gRPC address)")
	}
	tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	mc, err := mcns.New(c.cfg.MCNS, c.cfg.CACert, tok)
	if err != nil {
		return nil, err
	}
	zones, err := mc.ListZones(ctx)
	if err != nil {
		_ = mc.Close()
		return nil, fmt.Errorf("acmeclient: MCNS zones: %w", err)
	}
	zone := ""
	for _, z := range zones {
		zn := strings.TrimSuffix(z.Name, ".")
		if (name == zn || strings.HasSuffix(name, "."+zn)) && len(zn) > len(zone) {
			zone = zn
		}
	}
	if zone == "" {
		_ = mc.Close()
		return nil, fmt.Errorf("acmeclient: no MCNS zone holds %s", name)
	}
	fqdn := "_acme-challenge." + name + "."
	rec, err := mc.CreateRecord(ctx, zone, mcns.RecordFields{Name: fqdn, Type: "TXT", TTL: challengeTTL, Value: value})
	if err != nil {
		_ = mc.Close()
		return nil, fmt.Errorf("acmeclient: write %s TXT: %w", fqdn, err)
	}
	c.logger.Info("acmeclient: dns-01 record written", "name", fqdn, "zone", zone, "id", rec.ID)
	cleanup := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := mc.DeleteRecord(dctx, zone, rec.ID); err != nil {
			c.logger.Warn("acmeclient: dns-01 record not removed", "name", fqdn, "id", rec.ID, "error", err)
		}
		_ = mc.Close()
	}
	if err := c.waitTXT(ctx, fqdn, value); err != nil {
		cleanup()
		return nil, err
	}
	return cleanup, nil
}

// waitTXT polls every resolver until each serves the TXT value.
func (c *Client) waitTXT(ctx context.Context, fqdn, value string) error {
	if len(c.cfg.DNSResolvers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PropagationTimeout)
	defer cancel()
	for _, server := range c.cfg.DNSResolvers {
		for !hasTXT(ctx, server, fqdn, value) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("acmeclient: %s does not serve the TXT record of %s after %s", server, fqdn, c.cfg.PropagationTimeout)
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return nil
}

func hasTXT(ctx context.Context, server, fqdn, value string) bool {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, dns.TypeTXT)
	m.RecursionDesired = true
	resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, m, server)
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		return false
	}
	return slices.ContainsFunc(resp.Answer, func(rr dns.RR) bool {
		t, ok := rr.(*dns.TXT)
		return ok && strings.Join(t.Txt, "") == value
	})
}
