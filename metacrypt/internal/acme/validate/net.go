package validate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Net is the real Network: names resolve through Resolvers (tried in
// order, the next one when one fails or answers SERVFAIL or REFUSED), or
// through the system's resolver when there are none.
type Net struct {
	// Resolvers are DNS servers, "host:port".
	Resolvers []string
	// HTTPPort and TLSPort are the ports http-01 redirects may lead to
	// (for http:// and https:// URLs respectively).
	HTTPPort, TLSPort int
	// QueryTimeout bounds one DNS query (default 3s).
	QueryTimeout time.Duration
}

var _ Network = (*Net)(nil)

// maxRedirects bounds an http-01 fetch's redirects.
const maxRedirects = 10

func (n *Net) queryTimeout() time.Duration {
	if n.QueryTimeout > 0 {
		return n.QueryTimeout
	}
	return 3 * time.Second
}

// query asks the resolvers in order; an NXDOMAIN or NODATA answer is an
// answer (no records), a network failure, SERVFAIL or REFUSED moves on.
func (n *Net) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	var errs []error
	for _, server := range n.Resolvers {
		c := &dns.Client{Net: "udp", Timeout: n.queryTimeout()}
		resp, _, err := c.ExchangeContext(ctx, m, server)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.ExchangeContext(ctx, m, server)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
			continue
		case resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError:
			return resp.Answer, nil
		default:
			errs = append(errs, fmt.Errorf("%s: %s", server, dns.RcodeToString[resp.Rcode]))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// LookupTXT implements Network.
func (n *Net) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if len(n.Resolvers) == 0 {
		txts, err := net.DefaultResolver.LookupTXT(ctx, name)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, nil
		}
		return txts, err
	}
	rrs, err := n.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// lookupIP resolves a host to its addresses (an IP literal to itself).
func (n *Net) lookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if len(n.Resolvers) == 0 {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	var out []netip.Addr
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := n.query(ctx, host, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			switch r := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(r.A); ok {
					out = append(out, a.Unmap())
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(r.AAAA); ok {
					out = append(out, a)
				}
			}
		}
	}
	if len(out) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("%s: %w", host, errNoAddress)
	}
	return out, nil
}

// dial connects to the first address of host that answers.
func (n *Net) dial(ctx context.Context, host string, port int) (net.Conn, error) {
	addrs, err := n.lookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String()) //nolint:gosec // port checked by the config
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// DialTLS implements Network.
func (n *Net) DialTLS(ctx context.Context, host string, port int, cfg *tls.Config) (*tls.Conn, error) {
	raw, err := n.dial(ctx, host, port)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return c, nil
}

// Get implements Network. Redirects are followed, at most ten, to http://
// URLs on HTTPPort and https:// URLs on TLSPort only; https answers are
// not checked for a trusted certificate (RFC 8555 §8.3).
func (n *Net) Get(ctx context.Context, url string) (*http.Response, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, portStr, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			port, err := strconv.Atoi(portStr)
			if err != nil {
				return nil, err
			}
			return n.dial(ctx, host, port)
		},
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // see above
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	c := &http.Client{Transport: tr, CheckRedirect: n.checkRedirect}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "metacrypt-acme-validator")
	resp, err := c.Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	return resp, nil
}

func (n *Net) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	u := req.URL
	want, def := n.HTTPPort, 80
	switch u.Scheme {
	case "http":
	case "https":
		want, def = n.TLSPort, 443
	default:
		return fmt.Errorf("redirect to a %s URL", u.Scheme)
	}
	if want == 0 {
		want = def
	}
	port := def
	if p := u.Port(); p != "" {
		var err error
		if port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("redirect to port %q", p)
		}
	}
	if port != want {
		return fmt.Errorf("redirect to port %d (only %d for %s)", port, want, u.Scheme)
	}
	return nil
}
