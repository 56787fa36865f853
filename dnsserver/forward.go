package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// upstreamUDPSize is the EDNS buffer size offered to upstreams: the DNS flag
// day 2020 value, small enough to avoid IP fragmentation.
const upstreamUDPSize = 1232

var errNoUpstreams = errors.New("no upstream resolvers configured")

// exchangeFunc sends one query to one upstream over network ("udp" or "tcp").
type exchangeFunc func(ctx context.Context, q *dns.Msg, network, upstream string) (*dns.Msg, error)

// forwarder resolves names outside the zone (the targets of ExternalName
// Services) through upstream resolvers, with a cache shared by all queries.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	cache     *answerCache
	group     singleflight.Group
	exchange  exchangeFunc
	now       func() time.Time
}

func newForwarder(upstreams []string, timeout time.Duration, cacheSize int) *forwarder {
	f := &forwarder{
		upstreams: upstreams,
		timeout:   timeout,
		cache:     newAnswerCache(cacheSize),
		now:       time.Now,
	}
	f.exchange = f.exchangeWithClient
	return f
}

// resolve answers name and qtype from the cache while fresh, else from the
// first upstream that answers; concurrent identical questions share one
// upstream query. When every upstream fails, an expired answer is served stale
// (RFC 8767) if there is one.
func (f *forwarder) resolve(ctx context.Context, name string, qtype uint16) (*upstreamAnswer, error) {
	name = strings.ToLower(dns.Fqdn(name))
	key := name + "/" + strconv.Itoa(int(qtype))
	now := f.now()
	if e, ok := f.cache.get(key); ok {
		if now.Before(e.expires) {
			cacheHitsTotal.Inc()
			return e.at(now), nil
		}
		if now.Before(e.retryAt) {
			staleAnswersTotal.Inc()
			return e.stale(), nil
		}
	}
	cacheMissesTotal.Inc()

	// The query outlives any one caller: it is shared, and bounded by the
	// per-upstream timeout rather than by the first caller's context.
	v, err, _ := f.group.Do(key, func() (any, error) {
		a, err := f.query(context.WithoutCancel(ctx), name, qtype)
		if err != nil {
			return nil, err
		}
		if ttl, ok := cacheTTL(a); ok {
			received := f.now()
			f.cache.put(&cacheEntry{key: key, answer: a, received: received, expires: received.Add(ttl)})
		}
		return a, nil
	})
	if err == nil {
		return v.(*upstreamAnswer), nil
	}
	now = f.now()
	if e, ok := f.cache.get(key); ok && now.Before(e.expires.Add(maxStale)) {
		f.cache.holdStale(key, now.Add(staleRetry))
		staleAnswersTotal.Inc()
		return e.stale(), nil
	}
	return nil, err
}

// query asks each upstream in turn until one gives a usable answer.
func (f *forwarder) query(ctx context.Context, name string, qtype uint16) (*upstreamAnswer, error) {
	var errs []error
	for _, upstream := range f.upstreams {
		a, err := f.queryOne(ctx, name, qtype, upstream)
		if err == nil {
			return a, nil
		}
		upstreamErrorsTotal.WithLabelValues(upstream).Inc()
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		errs = append(errs, errNoUpstreams)
	}
	return nil, fmt.Errorf("resolving %s %s: %w", name, dns.TypeToString[qtype], errors.Join(errs...))
}

func (f *forwarder) queryOne(ctx context.Context, name string, qtype uint16, upstream string) (*upstreamAnswer, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(upstreamUDPSize, false)
	r, err := f.exchange(ctx, q, "udp", upstream)
	if err == nil && r.Truncated {
		q.Id = dns.Id()
		r, err = f.exchange(ctx, q, "tcp", upstream)
	}
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", upstream, err)
	}
	if len(r.Question) != 1 || r.Question[0].Qtype != qtype || !strings.EqualFold(r.Question[0].Name, name) {
		return nil, fmt.Errorf("upstream %s: reply is for another question", upstream)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("upstream %s: %s", upstream, rcodeLabel(r.Rcode))
	}
	a := &upstreamAnswer{rcode: r.Rcode}
	for _, rr := range r.Answer {
		if rr.Header().Class == dns.ClassINET && rr.Header().Rrtype != dns.TypeOPT {
			a.answer = append(a.answer, rr)
		}
	}
	for _, rr := range r.Ns {
		if rr.Header().Rrtype == dns.TypeSOA {
			a.ns = append(a.ns, rr)
		}
	}
	return a, nil
}

// exchangeWithClient is the real exchange: a miekg client bounded by the
// per-upstream timeout.
func (f *forwarder) exchangeWithClient(ctx context.Context, q *dns.Msg, network, upstream string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: f.timeout, UDPSize: upstreamUDPSize}
	r, _, err := c.ExchangeContext(ctx, q, upstream)
	if err != nil {
		return nil, fmt.Errorf("exchange over %s: %w", network, err)
	}
	return r, nil
}

// UpstreamsFromResolvConf returns the nameservers of a resolv.conf file (such
// as /etc/resolv.conf) as host:port addresses, for Config.Upstreams.
func UpstreamsFromResolvConf(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading nameservers from %s: %w", path, err)
	}
	port := cc.Port
	if port == "" {
		port = "53"
	}
	upstreams := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		upstreams = append(upstreams, net.JoinHostPort(s, port))
	}
	if len(upstreams) == 0 {
		return nil, fmt.Errorf("reading nameservers from %s: %w", path, errNoUpstreams)
	}
	return upstreams, nil
}

// normalizeUpstream accepts "host:port", or a bare host or IP with port 53.
func normalizeUpstream(u string) (string, error) {
	if _, _, err := net.SplitHostPort(u); err == nil {
		return u, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(u, "["), "]")
	if host == "" {
		return "", fmt.Errorf("upstream %q: empty address", u)
	}
	return net.JoinHostPort(host, "53"), nil
}
