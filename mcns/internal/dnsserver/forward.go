package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// forwarder resolves names outside the served zones through the upstream
// resolvers, tried in order, and caches what they answer.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	udp, tcp  *dns.Client
	cache     *cache
	logger    *slog.Logger
	// group makes concurrent misses for one question share one upstream
	// exchange instead of each sending its own.
	group singleflight.Group
}

func newForwarder(cfg Config, logger *slog.Logger) *forwarder {
	return &forwarder{
		upstreams: cfg.Upstreams,
		timeout:   cfg.UpstreamTimeout.Duration,
		udp:       &dns.Client{Net: "udp", Timeout: cfg.UpstreamTimeout.Duration, UDPSize: maxUDPSize},
		tcp:       &dns.Client{Net: "tcp", Timeout: cfg.UpstreamTimeout.Duration},
		cache:     newCache(cfg.CacheSize, time.Now),
		logger:    logger,
	}
}

// resolve answers k from the cache or the upstreams.
func (f *forwarder) resolve(ctx context.Context, k cacheKey) (cached, error) {
	if v, ok := f.cache.get(k); ok {
		return v, nil
	}
	flight := k.name + "/" + strconv.Itoa(int(k.qtype)) + "/" + strconv.Itoa(int(k.qclass)) + "/" + strconv.FormatBool(k.do)
	v, err, _ := f.group.Do(flight, func() (any, error) {
		r, err := f.exchange(ctx, k)
		if err != nil {
			return cached{}, err
		}
		f.cache.put(k, r)
		return r, nil
	})
	if err != nil {
		return cached{}, err
	}
	r, _ := v.(cached)
	return r, nil
}

// exchange asks the upstreams in order until one answers.
func (f *forwarder) exchange(ctx context.Context, k cacheKey) (cached, error) {
	var errs []error
	for _, up := range f.upstreams {
		if err := ctx.Err(); err != nil {
			return cached{}, fmt.Errorf("forward %s: %w", k.name, err)
		}
		r, err := f.try(ctx, up, k)
		if err == nil {
			return r, nil
		}
		f.logger.Debug("dns: upstream failed", "upstream", up, "name", k.name, "type", dns.TypeToString[k.qtype], "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
	}
	if len(errs) == 0 {
		return cached{}, fmt.Errorf("forward %s: no upstreams configured", k.name)
	}
	return cached{}, fmt.Errorf("forward %s: %w", k.name, errors.Join(errs...))
}

// errUpstreamRcode is an upstream answer that is not an answer (SERVFAIL,
// REFUSED, ...), so the next upstream is tried.
var errUpstreamRcode = errors.New("upstream refused to answer")

// try asks one upstream over UDP, and again over TCP if the answer came
// back truncated.
func (f *forwarder) try(ctx context.Context, upstream string, k cacheKey) (cached, error) {
	q := new(dns.Msg)
	q.SetQuestion(k.name, k.qtype)
	q.Question[0].Qclass = k.qclass
	q.SetEdns0(maxUDPSize, k.do)
	r, err := f.once(ctx, f.udp, q, upstream)
	if err == nil && r.Truncated {
		r, err = f.once(ctx, f.tcp, q, upstream)
	}
	if err != nil {
		return cached{}, err
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return cached{}, fmt.Errorf("%w: %s", errUpstreamRcode, dns.RcodeToString[r.Rcode])
	}
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, k.name) ||
		r.Question[0].Qtype != k.qtype || r.Question[0].Qclass != k.qclass {
		return cached{}, errors.New("answer is for another question")
	}
	return cached{
		rcode:         r.Rcode,
		authenticated: r.AuthenticatedData,
		answer:        r.Answer,
		ns:            r.Ns,
		ext:           withoutOPT(r.Extra),
	}, nil
}

// once is one exchange bounded by the upstream timeout.
func (f *forwarder) once(ctx context.Context, c *dns.Client, q *dns.Msg, upstream string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	q.Id = dns.Id()
	r, _, err := c.ExchangeContext(ctx, q, upstream)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Net, err)
	}
	return r, nil
}

// withoutOPT drops the upstream's OPT (and any transaction signature):
// they describe its hop, not the answer, and the reply gets its own.
func withoutOPT(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	for _, r := range rrs {
		switch r.Header().Rrtype {
		case dns.TypeOPT, dns.TypeTSIG, dns.TypeSIG:
		default:
			out = append(out, r)
		}
	}
	return out
}
