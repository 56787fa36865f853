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
	// failureTTL is how long, after every upstream failed for a question
	// with nothing stale to serve, the question is answered SERVFAIL without
	// asking upstream again: a blackholed upstream then costs one exchange
	// per question every few seconds, not one per client query.
	failureTTL = 5 * time.Second
	// entryOverhead and recordOverhead are what an entry and each of its
	// records take in memory beyond the records' wire length: the list
	// element, map slot, entry and record headers.
	entryOverhead  = 256
	recordOverhead = 64
)

// upstreamAnswer is the part of an upstream reply the server uses. Its records
// are shared between callers and with the cache, and never modified.
type upstreamAnswer struct {
	rcode  int
	answer []dns.RR
	ns     []dns.RR // SOA records only, for negative answers
}

// cacheEntry is an upstream answer with the time it was received, or, with
// a nil answer, the record that every upstream failed for the question until
// expires.
type cacheEntry struct {
	key      string
	answer   *upstreamAnswer
	size     int // bytes the entry is counted for
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

// answerCache is a cache of upstream answers bounded both in entries and in
// bytes, which evicts the least recently used entry. Expired entries stay
// until evicted, to be served stale.
type answerCache struct {
	mu       sync.Mutex
	max      int
	maxBytes int
	bytes    int
	order    *list.List // of *cacheEntry, most recently used first
	entries  map[string]*list.Element
}

func newAnswerCache(max, maxBytes int) *answerCache {
	return &answerCache{max: max, maxBytes: maxBytes, order: list.New(), entries: map[string]*list.Element{}}
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

// put adds or replaces an entry, then evicts the least recently used ones
// until both bounds hold. An entry larger than the byte bound is not kept.
func (c *answerCache) put(e *cacheEntry) {
	e.size = entrySize(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	if e.size > c.maxBytes {
		return
	}
	c.entries[e.key] = c.order.PushFront(e)
	c.bytes += e.size
	for c.order.Len() > c.max || c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
	cacheBytes.Set(float64(c.bytes))
}

// remove drops one entry. c.mu is held.
func (c *answerCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.order.Remove(el)
	delete(c.entries, e.key)
	c.bytes -= e.size
}

// markFailed records that every upstream failed for key at now: an answer
// held for it is then served stale without asking upstream again for
// staleRetry; without one, the question fails for failureTTL.
func (c *answerCache) markFailed(key string, now time.Time) {
	c.mu.Lock()
	el, ok := c.entries[key]
	if ok && el.Value.(*cacheEntry).answer != nil {
		e := *el.Value.(*cacheEntry)
		e.retryAt = now.Add(staleRetry)
		el.Value = &e
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.put(&cacheEntry{key: key, expires: now.Add(failureTTL)})
}

// size returns the bytes the cache counts its entries for.
func (c *answerCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// entrySize estimates the memory an entry holds: the wire length of its
// records plus fixed overheads.
func entrySize(e *cacheEntry) int {
	n := entryOverhead + 2*len(e.key)
	if e.answer != nil {
		for _, rrs := range [][]dns.RR{e.answer.answer, e.answer.ns} {
			for _, rr := range rrs {
				n += recordOverhead + dns.Len(rr)
			}
		}
	}
	return n
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
