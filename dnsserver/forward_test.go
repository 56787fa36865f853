package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"

	"github.com/netintent/netintent/internal/testenv"
)

// externalIndex holds ExternalName Services pointing out of the zone, and the
// CNAME chains and loops the forwarding tests need.
func externalIndex() *Index {
	idx := NewIndex()
	addExternalFixtures(idx)
	idx.MarkSynced()
	return idx
}

func addExternalFixtures(idx *Index) {
	idx.UpsertService(externalNameService("shop", "payments", "api.payments.example.com"))
	idx.UpsertService(externalNameService("shop", "gone", "gone.example.com"))
	idx.UpsertService(externalNameService("shop", "big", "big.example.com"))
	idx.UpsertService(externalNameService("shop", "short", "short.example.com"))
	idx.UpsertService(withTTL(externalNameService("shop", "brief", "brief.example.com"), "10"))
	idx.UpsertService(externalNameService("shop", "silent", "silent.example.com"))
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.96.0.10"}, servicePort("http", corev1.ProtocolTCP, 80)))

	// In-zone loop: loop-a -> loop-b -> loop-a.
	idx.UpsertService(externalNameService("shop", "loop-a", "loop-b.shop.svc.cluster.local"))
	idx.UpsertService(externalNameService("shop", "loop-b", "loop-a.shop.svc.cluster.local"))
	// Loop through an upstream: back -> back.example.com -> back.shop.svc...
	idx.UpsertService(externalNameService("shop", "back", "back.example.com"))
	// Out of the zone and back in: via -> via.example.com -> web.shop.svc...
	idx.UpsertService(externalNameService("shop", "via", "via.example.com"))

	// In-zone chain: hop-0 -> hop-1 -> ... -> hop-11 -> web: 12 CNAMEs from
	// hop-0, 9 from hop-3, 8 from hop-4.
	for i := range 11 {
		idx.UpsertService(externalNameService("shop", fmt.Sprintf("hop-%d", i), fmt.Sprintf("hop-%d.shop.svc.cluster.local", i+1)))
	}
	idx.UpsertService(externalNameService("shop", "hop-11", "web.shop.svc.cluster.local"))
	// Upstream chains, one CNAME per upstream answer: far -> far-0.example.com
	// -> ... -> far-11.example.com -> an address (12 CNAMEs); near -> far-8...
	// (4 CNAMEs).
	idx.UpsertService(externalNameService("shop", "far", "far-0.example.com"))
	idx.UpsertService(externalNameService("shop", "near", "far-8.example.com"))
}

// upstreamZone is what the fake upstream knows.
func upstreamZone() map[string][]string {
	z := map[string][]string{
		"api.payments.example.com.": {"api.payments.example.com. 60 IN A 192.0.2.10", "api.payments.example.com. 60 IN AAAA 2001:db8::10"},
		"brief.example.com.":        {"brief.example.com. 1 IN A 192.0.2.20"},
		"short.example.com.":        {"short.example.com. 60 IN A 192.0.2.30"},
		"back.example.com.":         {"back.example.com. 60 IN CNAME back.shop.svc.cluster.local."},
		"via.example.com.":          {"via.example.com. 60 IN CNAME web.shop.svc.cluster.local."},
		"far-11.example.com.":       {"far-11.example.com. 60 IN A 192.0.2.40"},
	}
	for i := range 11 {
		name := fmt.Sprintf("far-%d.example.com.", i)
		z[name] = []string{fmt.Sprintf("%s 60 IN CNAME far-%d.example.com.", name, i+1)}
	}
	big := []string{}
	for i := range 100 {
		big = append(big, fmt.Sprintf("big.example.com. 60 IN A 192.0.2.%d", i+1))
	}
	z["big.example.com."] = big
	return z
}

func TestOutOfZoneRefusedWithoutUpstreamQuery(t *testing.T) {
	up := startUpstream(t, zoneAnswer(upstreamZone()))
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex())
	for _, name := range []string{"api.payments.example.com.", "example.com.", "cluster.local.", "."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeNS, dns.TypeANY} {
			r := exchange(t, "udp", srv.Addr(), name, qtype)
			if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 || r.RecursionAvailable {
				t.Errorf("%s %s: %s with %d answers, RA %v; want REFUSED, none, no RA",
					name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], len(r.Answer), r.RecursionAvailable)
			}
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("upstream received %d queries, want 0", n)
	}
}

func TestExternalNameForwarded(t *testing.T) {
	up := startUpstream(t, zoneAnswer(upstreamZone()))
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex())
	cases := []struct {
		desc    string
		name    string
		qtype   uint16
		network string
		rcode   int
		answer  []string
		own     bool // final data from the index: AA expected
	}{
		{desc: "A", name: "payments.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"payments.shop.svc.cluster.local. 30 IN CNAME api.payments.example.com.",
			"api.payments.example.com. 60 IN A 192.0.2.10",
		}},
		{desc: "AAAA over TCP", name: "payments.shop.svc.cluster.local.", qtype: dns.TypeAAAA, network: "tcp", answer: []string{
			"payments.shop.svc.cluster.local. 30 IN CNAME api.payments.example.com.",
			"api.payments.example.com. 60 IN AAAA 2001:db8::10",
		}},
		{desc: "NODATA upstream", name: "payments.shop.svc.cluster.local.", qtype: dns.TypeMX, answer: []string{
			"payments.shop.svc.cluster.local. 30 IN CNAME api.payments.example.com.",
		}},
		{desc: "NXDOMAIN upstream", name: "gone.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{
			"gone.shop.svc.cluster.local. 30 IN CNAME gone.example.com.",
		}},
		{desc: "Service TTL on the CNAME", name: "brief.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"brief.shop.svc.cluster.local. 10 IN CNAME brief.example.com.",
			"brief.example.com. 1 IN A 192.0.2.20",
		}},
		{desc: "out of the zone and back in", name: "via.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"via.shop.svc.cluster.local. 30 IN CNAME via.example.com.",
			"via.example.com. 60 IN CNAME web.shop.svc.cluster.local.",
			"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
		}, own: true},
		{desc: "upstream chain of 4", name: "near.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"near.shop.svc.cluster.local. 30 IN CNAME far-8.example.com.",
			"far-8.example.com. 60 IN CNAME far-9.example.com.",
			"far-9.example.com. 60 IN CNAME far-10.example.com.",
			"far-10.example.com. 60 IN CNAME far-11.example.com.",
			"far-11.example.com. 60 IN A 192.0.2.40",
		}},
		{desc: "in-zone chain of 8", name: "hop-4.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"hop-4.shop.svc.cluster.local. 30 IN CNAME hop-5.shop.svc.cluster.local.",
			"hop-5.shop.svc.cluster.local. 30 IN CNAME hop-6.shop.svc.cluster.local.",
			"hop-6.shop.svc.cluster.local. 30 IN CNAME hop-7.shop.svc.cluster.local.",
			"hop-7.shop.svc.cluster.local. 30 IN CNAME hop-8.shop.svc.cluster.local.",
			"hop-8.shop.svc.cluster.local. 30 IN CNAME hop-9.shop.svc.cluster.local.",
			"hop-9.shop.svc.cluster.local. 30 IN CNAME hop-10.shop.svc.cluster.local.",
			"hop-10.shop.svc.cluster.local. 30 IN CNAME hop-11.shop.svc.cluster.local.",
			"hop-11.shop.svc.cluster.local. 30 IN CNAME web.shop.svc.cluster.local.",
			"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
		}, own: true},
		{desc: "in-zone chain of 9", name: "hop-3.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{desc: "in-zone chain of 12", name: "hop-0.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{desc: "in-zone loop", name: "loop-a.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{desc: "loop through upstream", name: "back.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{desc: "upstream chain of 12", name: "far.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			network := tc.network
			if network == "" {
				network = "udp"
			}
			r := exchange(t, network, srv.Addr(), tc.name, tc.qtype)
			if r.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if got, want := rrStrings(r.Answer), parseRRs(t, tc.answer); !slices.Equal(got, want) {
				t.Errorf("answer:\n got %q\nwant %q", got, want)
			}
			// The upstream's SOA is never passed on.
			if len(r.Ns) != 0 {
				t.Errorf("authority = %v, want none", r.Ns)
			}
			if tc.rcode != dns.RcodeServerFailure && r.Authoritative != tc.own {
				t.Errorf("AA = %v, want %v", r.Authoritative, tc.own)
			}
		})
	}
}

func TestConcurrentQuestionsShareOneUpstreamQuery(t *testing.T) {
	var release sync.Once
	gate := make(chan struct{})
	answer := zoneAnswer(upstreamZone())
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		<-gate // hold the first query until every client has asked
		answer(w, r)
	})
	t.Cleanup(func() { release.Do(func() { close(gate) }) }) // before the upstream stops
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex())

	const clients = 50
	missesBefore := counterValue(t, cacheMissesTotal)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			r, err := tryExchange("udp", srv.Addr(), "payments.shop.svc.cluster.local.", dns.TypeA)
			switch {
			case err != nil:
				errs <- err
			case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2:
				errs <- fmt.Errorf("%s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
	// Hold the one upstream query until all 50 questions have missed the
	// cache, so that they are all waiting on it rather than answered later
	// from the cache.
	testenv.Await(t, "all questions wait on one upstream query", 30*time.Second, func() error {
		if missed := counterValue(t, cacheMissesTotal) - missesBefore; missed < clients {
			return fmt.Errorf("%v of %d questions missed the cache so far", missed, clients)
		}
		return nil
	})
	release.Do(func() { close(gate) })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := up.queries.Load(); n != 1 {
		t.Errorf("upstream received %d queries for %d identical questions, want 1", n, clients)
	}
}

func TestCachedAnswersAgeAndExpire(t *testing.T) {
	up := startUpstream(t, zoneAnswer(upstreamZone()))
	clock := newFakeClock()
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex(), func(s *Server) {
		s.resolver.forwarder.now = clock.Now
	})
	ask := func(name string, qtype uint16) *dns.Msg {
		return exchange(t, "udp", srv.Addr(), name, qtype)
	}
	ask("short.shop.svc.cluster.local.", dns.TypeA)
	clock.Advance(25 * time.Second)
	r := ask("short.shop.svc.cluster.local.", dns.TypeA)
	if n := up.queries.Load(); n != 1 {
		t.Errorf("upstream queries = %d, want 1 (second answer from the cache)", n)
	}
	if ttl := r.Answer[len(r.Answer)-1].Header().Ttl; ttl != 35 {
		t.Errorf("cached TTL = %d after 25 s of 60, want 35", ttl)
	}
	clock.Advance(40 * time.Second)
	ask("short.shop.svc.cluster.local.", dns.TypeA)
	if n := up.queries.Load(); n != 2 {
		t.Errorf("upstream queries = %d, want 2 (cache expired)", n)
	}

	// Negative answers are cached by the SOA minimum (60 s here).
	ask("gone.shop.svc.cluster.local.", dns.TypeA)
	clock.Advance(30 * time.Second)
	ask("gone.shop.svc.cluster.local.", dns.TypeA)
	if n := up.queries.Load(); n != 3 {
		t.Errorf("upstream queries = %d, want 3 (NXDOMAIN cached)", n)
	}
	clock.Advance(31 * time.Second)
	ask("gone.shop.svc.cluster.local.", dns.TypeA)
	if n := up.queries.Load(); n != 4 {
		t.Errorf("upstream queries = %d, want 4 (NXDOMAIN expired after the SOA minimum)", n)
	}
}

func TestStaleAnswerWhenUpstreamsFail(t *testing.T) {
	up := startUpstream(t, zoneAnswer(upstreamZone()))
	clock := newFakeClock()
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex(), func(s *Server) {
		s.resolver.forwarder.now = clock.Now
	})
	const name = "brief.shop.svc.cluster.local."
	r := exchange(t, "udp", srv.Addr(), name, dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("first answer: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	up.stop()
	clock.Advance(10 * time.Second) // the upstream TTL was 1 s
	before := counterValue(t, staleAnswersTotal)

	r = exchange(t, "udp", srv.Addr(), name, dns.TypeA)
	want := parseRRs(t, []string{
		"brief.shop.svc.cluster.local. 10 IN CNAME brief.example.com.",
		"brief.example.com. 30 IN A 192.0.2.20",
	})
	if r.Rcode != dns.RcodeSuccess || !slices.Equal(rrStrings(r.Answer), want) {
		t.Errorf("with the upstream down: %s %q, want the stale answer %q", dns.RcodeToString[r.Rcode], rrStrings(r.Answer), want)
	}
	if got := counterValue(t, staleAnswersTotal) - before; got != 1 {
		t.Errorf("stale answers counted: %v, want 1", got)
	}

	// A name never answered has nothing stale to serve.
	r = exchange(t, "udp", srv.Addr(), "short.shop.svc.cluster.local.", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("uncached name with the upstream down: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestSilentUpstreamAnswersServFailInTime(t *testing.T) {
	// A socket that reads queries and never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	srv := startServer(t, Config{Upstreams: []string{pc.LocalAddr().String()}}, externalIndex())
	start := time.Now()
	r := exchange(t, "udp", srv.Addr(), "silent.shop.svc.cluster.local.", dns.TypeA)
	elapsed := time.Since(start)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode = %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if elapsed > 3*time.Second {
		t.Errorf("SERVFAIL after %v, want within 3 s", elapsed)
	}
}

func TestNextUpstreamOnFailure(t *testing.T) {
	refusing := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		_ = w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeRefused))
	})
	good := startUpstream(t, zoneAnswer(upstreamZone()))
	// A closed port: the exchange fails at once.
	closed := startUpstream(t, zoneAnswer(nil))
	closed.stop()
	srv := startServer(t, Config{Upstreams: []string{closed.addr, refusing.addr, good.addr}}, externalIndex())
	r := exchange(t, "udp", srv.Addr(), "payments.shop.svc.cluster.local.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("%s %v, want the answer of the third upstream", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if refusing.queries.Load() != 1 || good.queries.Load() != 1 {
		t.Errorf("queries: refusing %d, good %d; want 1 each", refusing.queries.Load(), good.queries.Load())
	}
}

func TestTruncatedUpstreamRetriedOverTCP(t *testing.T) {
	var udpQueries, tcpQueries int
	var mu sync.Mutex
	answer := zoneAnswer(upstreamZone())
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
			udpQueries++
			m := new(dns.Msg).SetReply(r)
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
		tcpQueries++
		answer(w, r)
	})
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex())
	r := exchange(t, "tcp", srv.Addr(), "big.shop.svc.cluster.local.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 101 {
		t.Errorf("%s with %d answers, want the CNAME and 100 addresses", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	mu.Lock()
	defer mu.Unlock()
	if udpQueries != 1 || tcpQueries != 1 {
		t.Errorf("upstream saw %d UDP and %d TCP queries, want 1 and 1", udpQueries, tcpQueries)
	}
}

func TestAnswerCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newAnswerCache(2, DefaultCacheMaxBytes)
	put := func(key string) { c.put(&cacheEntry{key: key, answer: &upstreamAnswer{}}) }
	put("a")
	put("b")
	c.get("a") // a is now more recent than b
	put("c")
	if _, ok := c.get("b"); ok {
		t.Error("b still cached, want it evicted as least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if c.len() != 2 {
		t.Errorf("len = %d, want 2", c.len())
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "search shop.svc.cluster.local svc.cluster.local\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:5\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := UpstreamsFromResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.53:53", "[2001:db8::53]:53"}; !slices.Equal(got, want) {
		t.Errorf("upstreams = %v, want %v", got, want)
	}
	if _, err := UpstreamsFromResolvConf(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestResolve(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	answer := zoneAnswer(upstreamZone())
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		asked = append(asked, r.Question[0].Name)
		mu.Unlock()
		answer(w, r)
	})
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex())
	ctx := context.Background()
	cases := []struct {
		host  string
		addrs []netip.Addr
		err   error
	}{
		{host: "api.payments.example.com", addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}},
		{host: "api.payments.example.com.", addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}},
		{host: "near.shop.svc.cluster.local", addrs: []netip.Addr{netip.MustParseAddr("192.0.2.40")}},
		{host: "web.shop.svc.cluster.local", addrs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}},
		{host: "via.example.com", addrs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}},
		{host: "gone.example.com", err: ErrNoAddresses},
		{host: "missing.shop.svc.cluster.local", err: ErrNoAddresses},
	}
	for _, tc := range cases {
		got, err := srv.Resolve(ctx, tc.host)
		if !errors.Is(err, tc.err) || !slices.Equal(got, tc.addrs) {
			t.Errorf("Resolve(%q) = %v, %v; want %v, %v", tc.host, got, err, tc.addrs, tc.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Every upstream question is the absolute name, never one with a search
	// domain appended; the second spelling of a name came from the cache.
	want := []string{
		"api.payments.example.com.", "api.payments.example.com.",
		"far-8.example.com.", "far-9.example.com.", "far-10.example.com.", "far-11.example.com.",
		"far-8.example.com.", "far-9.example.com.", "far-10.example.com.", "far-11.example.com.",
		"via.example.com.", "via.example.com.", "gone.example.com.", "gone.example.com.",
	}
	if !slices.Equal(asked, want) {
		t.Errorf("upstream was asked\n %q\nwant\n %q", asked, want)
	}
}

func TestResolveHonoursContext(t *testing.T) {
	addr, _ := blackhole(t)
	srv := startServer(t, Config{Upstreams: []string{addr}, UpstreamTimeout: 5 * time.Second}, externalIndex())
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := srv.Resolve(ctx, "api.payments.example.com"); err == nil {
		t.Error("Resolve through a blackholed upstream succeeded")
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Resolve returned after %v, want soon after its context's 100 ms", elapsed)
	}
}

func TestAnswerCacheBoundedInBytes(t *testing.T) {
	entry := func(key string, size int) *cacheEntry {
		return &cacheEntry{key: key, answer: &upstreamAnswer{answer: []dns.RR{bigTXT(key, size)}}}
	}
	one := entrySize(entry("a.", 1000))
	c := newAnswerCache(100, 3*one)
	for _, k := range []string{"a.", "b.", "c.", "d."} {
		c.put(entry(k, 1000))
	}
	if c.size() != 3*one || c.len() != 3 {
		t.Errorf("cache holds %d entries, %d bytes; want 3, %d", c.len(), c.size(), 3*one)
	}
	if _, ok := c.get("a."); ok {
		t.Error("a. still cached, want it evicted as least recently used")
	}
	// Replacing an entry counts its new size only.
	c.put(entry("d.", 1000))
	if c.size() != 3*one {
		t.Errorf("after replacing d.: %d bytes, want %d", c.size(), 3*one)
	}
	// An entry larger than the whole bound is not kept, and evicts nothing.
	c.put(entry("huge.", 4000))
	if _, ok := c.get("huge."); ok || c.len() != 3 {
		t.Errorf("an entry above the bound: cached %v, %d entries left; want not cached, 3 left", ok, c.len())
	}
	// A failure entry is small, and counted.
	c.markFailed("e.", time.Now())
	if e, ok := c.get("e."); !ok || e.answer != nil || c.size() > 3*one {
		t.Errorf("failure entry: %v %+v, %d bytes", ok, e, c.size())
	}
}
