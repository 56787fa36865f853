package dnsserver

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxCacheTTL caps how long an upstream answer is trusted, whatever its TTL.
	maxCacheTTL = time.Hour
	// staleTTL is the TTL of a stale answer (RFC 8767 section 4 suggests 30 s).
	staleTTL = 30
	// maxStale is how long past its expiry an answer may still be served
	// stale (RFC 8767 suggests one to three days).
	maxStale = 24 * time.Hour
	// staleRetry is how long, after every upstream failed, a stale answer is
	// served without asking upstream again (RFC 8767's failure recheck timer).
	staleRetry = 30 * time.Second
)

// upstreamAnswer is the part of an upstream reply the server uses. Its records
// are shared between callers and with the cache, and never modified.
type upstreamAnswer struct {
	rcode  int
	answer []dns.RR
	ns     []dns.RR // SOA records only, for negative answers
}

// cacheEntry is an upstream answer with the time it was received.
type cacheEntry struct {
	key      string
	answer   *upstreamAnswer
	received time.Time
	expires  time.Time
	// retryAt is set when every upstream failed: until then the stale
	// answer is served without asking upstream again.
	retryAt time.Time
}

// at returns the answer as it stands at now: every TTL lowered by the time
// spent in the cache.
func (e *cacheEntry) at(now time.Time) *upstreamAnswer {
	age := uint32(now.Sub(e.received) / time.Second)
	return e.withTTL(func(ttl uint32) uint32 {
		if ttl < age {
			return 0
		}
		return ttl - age
	})
}

// stale returns the answer with the stale TTL on every record.
func (e *cacheEntry) stale() *upstreamAnswer {
	return e.withTTL(func(uint32) uint32 { return staleTTL })
}

func (e *cacheEntry) withTTL(ttl func(uint32) uint32) *upstreamAnswer {
	copyAll := func(rrs []dns.RR) []dns.RR {
		if len(rrs) == 0 {
			return nil
		}
		out := make([]dns.RR, len(rrs))
		for i, rr := range rrs {
			c := dns.Copy(rr)
			c.Header().Ttl = ttl(c.Header().Ttl)
			out[i] = c
		}
		return out
	}
	return &upstreamAnswer{rcode: e.answer.rcode, answer: copyAll(e.answer.answer), ns: copyAll(e.answer.ns)}
}

// answerCache is a bounded cache of upstream answers that evicts the least
// recently used entry. Expired entries stay until evicted, to be served stale.
type answerCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // of *cacheEntry, most recently used first
	entries map[string]*list.Element
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, order: list.New(), entries: map[string]*list.Element{}}
}

// get returns a copy of the entry for key, so callers can read it unlocked.
func (c *answerCache) get(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return cacheEntry{}, false
	}
	c.order.MoveToFront(el)
	return *el.Value.(*cacheEntry), true
}

func (c *answerCache) put(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.entries[e.key] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}

// holdStale records that upstreams failed for key, so its stale answer is
// served without asking them again until retryAt.
func (c *answerCache) holdStale(key string, retryAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := *el.Value.(*cacheEntry)
		e.retryAt = retryAt
		el.Value = &e
	}
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// cacheTTL is how long an upstream answer may be cached: the lowest TTL of its
// records and of its SOA's TTL and minimum (RFC 2308 section 5: a negative
// answer lives as long as its SOA says). A negative answer without an SOA is
// not cached, nor is anything with a TTL of zero.
func cacheTTL(a *upstreamAnswer) (time.Duration, bool) {
	ttl := uint32(maxCacheTTL / time.Second)
	for _, rr := range a.answer {
		ttl = min(ttl, rr.Header().Ttl)
	}
	soaSeen := false
	for _, rr := range a.ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl = min(ttl, soa.Hdr.Ttl, soa.Minttl)
			soaSeen = true
		}
	}
	negative := a.rcode == dns.RcodeNameError || len(a.answer) == 0
	if (negative && !soaSeen) || ttl == 0 {
		return 0, false
	}
	return time.Duration(ttl) * time.Second, true
}
