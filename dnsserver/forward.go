package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// upstreamUDPSize is the EDNS buffer size offered to upstreams: the DNS flag
// day 2020 value, small enough to avoid IP fragmentation.
const upstreamUDPSize = 1232

var (
	errNoUpstreams = errors.New("no upstream resolvers configured")
	// errOverloaded: the most upstream queries allowed are in flight.
	errOverloaded = errors.New("too many upstream queries in flight")
	// errRecentFailure: every upstream failed for the question moments ago.
	errRecentFailure = errors.New("every upstream failed for this question moments ago")
)

// exchangeFunc sends one query to one upstream over network ("udp" or "tcp").
type exchangeFunc func(ctx context.Context, q *dns.Msg, network, upstream string) (*dns.Msg, error)

// forwarder resolves names outside the zone (the targets of ExternalName
// Services) through upstream resolvers, with a cache shared by all queries.
// Questions are absolute names: no search path applies.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	cache     *answerCache
	group     singleflight.Group
	exchange  exchangeFunc
	now       func() time.Time
	// inFlight holds a token for each question waiting on upstreams; when
	// it is full, more questions fail at once instead of piling up.
	inFlight chan struct{}
	// queries counts the upstream queries under way, also at most
	// cap(inFlight).
	queries atomic.Int64
}

func newForwarder(upstreams []string, timeout time.Duration, cacheSize, cacheBytes, maxConcurrent int) *forwarder {
	f := &forwarder{
		upstreams: upstreams,
		timeout:   timeout,
		cache:     newAnswerCache(cacheSize, cacheBytes),
		now:       time.Now,
		inFlight:  make(chan struct{}, maxConcurrent),
	}
	f.exchange = f.exchangeWithClient
	return f
}

// resolve answers name and qtype from the cache while fresh, else from the
// first upstream that answers; concurrent identical questions share one
// upstream query. When every upstream fails, an expired answer is served stale
// (RFC 8767) if there is one; if not, the question fails without asking
// upstream again for failureTTL. At most cap(inFlight) questions wait on
// upstreams at once, and as many upstream queries are under way: beyond that,
// resolve fails at once with errOverloaded.
// ctx bounds the caller's wait, not the shared query.
func (f *forwarder) resolve(ctx context.Context, name string, qtype uint16) (*upstreamAnswer, error) {
	name = strings.ToLower(dns.Fqdn(name))
	key := name + "/" + strconv.Itoa(int(qtype))
	now := f.now()
	if e, ok := f.cache.get(key); ok {
		switch {
		case e.answer == nil && now.Before(e.expires):
			return nil, fmt.Errorf("resolving %s %s: %w", name, dns.TypeToString[qtype], errRecentFailure)
		case e.answer == nil:
		case now.Before(e.expires):
			cacheHitsTotal.Inc()
			return e.at(now), nil
		case now.Before(e.retryAt):
			staleAnswersTotal.Inc()
			return e.stale(), nil
		}
	}
	cacheMissesTotal.Inc()

	select {
	case f.inFlight <- struct{}{}:
		defer func() { <-f.inFlight }()
	default:
		upstreamOverloadTotal.Inc()
		return nil, fmt.Errorf("resolving %s %s: %w", name, dns.TypeToString[qtype], errOverloaded)
	}

	// The query outlives any one caller: it is shared, and bounded by the
	// per-upstream timeout rather than by the first caller's context.
	ch := f.group.DoChan(key, func() (any, error) {
		// A caller that gave up no longer holds its token, but the query
		// it started goes on until the upstream timeout: count the queries
		// themselves too.
		if f.queries.Add(1) > int64(cap(f.inFlight)) {
			f.queries.Add(-1)
			upstreamOverloadTotal.Inc()
			return nil, fmt.Errorf("resolving %s %s: %w", name, dns.TypeToString[qtype], errOverloaded)
		}
		defer f.queries.Add(-1)
		a, err := f.query(context.WithoutCancel(ctx), name, qtype)
		if err != nil {
			f.cache.markFailed(key, f.now())
			return nil, err
		}
		if ttl, ok := cacheTTL(a); ok {
			received := f.now()
			f.cache.put(&cacheEntry{key: key, answer: a, received: received, expires: received.Add(ttl)})
		}
		return a, nil
	})
	var res singleflight.Result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("resolving %s %s: %w", name, dns.TypeToString[qtype], ctx.Err())
	}
	if res.Err == nil {
		return res.Val.(*upstreamAnswer), nil
	}
	now = f.now()
	if e, ok := f.cache.get(key); ok && e.answer != nil && now.Before(e.expires.Add(maxStale)) {
		staleAnswersTotal.Inc()
		return e.stale(), nil
	}
	return nil, res.Err
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
