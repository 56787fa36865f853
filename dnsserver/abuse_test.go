package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netintent/netintent/internal/testenv"
)

// bigTXT is one TXT record of about size bytes of text, owned by name.
func bigTXT(name string, size int) *dns.TXT {
	chunk := strings.Repeat("x", 255)
	txt := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}}
	for n := 0; n < size; n += 256 {
		txt.Txt = append(txt.Txt, chunk)
	}
	return txt
}

// TestCacheBoundedInBytes asks 10,000 distinct questions whose upstream
// answers are about 60 KB each (600 MB in all) and checks that the cache
// never holds more than its byte bound, while still holding as many answers
// as fit.
func TestCacheBoundedInBytes(t *testing.T) {
	const (
		questions  = 10000
		answerSize = 60000
		workers    = 8
	)
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true // too large for UDP: ask over TCP
		} else {
			m.Answer = []dns.RR{bigTXT(r.Question[0].Name, answerSize)}
		}
		_ = w.WriteMsg(m)
	})
	fwd := newForwarder([]string{up.addr}, DefaultUpstreamTimeout, DefaultCacheSize, DefaultCacheMaxBytes, DefaultMaxConcurrent)

	var next, peak atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= questions {
					return
				}
				a, err := fwd.resolve(context.Background(), fmt.Sprintf("q-%d.example.org.", i), dns.TypeTXT)
				if err != nil {
					errs <- err
					return
				}
				if n := dns.Len(a.answer[0]); n < answerSize {
					errs <- fmt.Errorf("answer of %d bytes, want at least %d", n, answerSize)
					return
				}
				size := int64(fwd.cache.size())
				for old := peak.Load(); size > old && !peak.CompareAndSwap(old, size); old = peak.Load() {
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	entries, size := fwd.cache.len(), fwd.cache.size()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d questions of ~%d B answers in %v: cache holds %d entries, %d bytes (peak %d, bound %d); heap in use after GC %d bytes",
		questions, answerSize, elapsed.Round(time.Millisecond), entries, size, peak.Load(), DefaultCacheMaxBytes, ms.HeapInuse)
	if p := peak.Load(); p > DefaultCacheMaxBytes {
		t.Errorf("cache reached %d bytes, above its bound of %d", p, DefaultCacheMaxBytes)
	}
	// The bound must not empty the cache: it holds as many answers as fit.
	if fit := DefaultCacheMaxBytes / (answerSize + entryOverhead + recordOverhead); entries < fit*9/10 || entries > fit {
		t.Errorf("cache holds %d entries, want about %d (bound / answer size)", entries, fit)
	}
	if n := up.queries.Load(); n != 2*questions {
		t.Errorf("upstream saw %d queries, want %d (each question over UDP then TCP)", n, 2*questions)
	}
	// The latest answers are kept: asking again does not go upstream.
	before := up.queries.Load()
	if _, err := fwd.resolve(context.Background(), fmt.Sprintf("q-%d.example.org.", questions-1), dns.TypeTXT); err != nil {
		t.Fatal(err)
	}
	if up.queries.Load() != before {
		t.Error("the latest answer was not cached")
	}
}

// blackhole is an upstream that reads queries and never answers.
func blackhole(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var received atomic.Int64
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	return pc.LocalAddr().String(), &received
}

// TestBlackholedUpstreamBoundsGoroutines sends 1,000 distinct questions at
// once, each leading to a blackholed upstream, and samples the goroutines:
// beyond MaxConcurrent questions waiting, the rest are answered SERVFAIL at
// once instead of each holding goroutines for the upstream timeout.
func TestBlackholedUpstreamBoundsGoroutines(t *testing.T) {
	const (
		questions       = 1000
		maxConcurrent   = 100
		upstreamTimeout = time.Second
	)
	addr, received := blackhole(t)
	idx := NewIndex()
	for i := range questions {
		idx.UpsertService(externalNameService("shop", fmt.Sprintf("e-%d", i), fmt.Sprintf("t-%d.example.org", i)))
	}
	idx.MarkSynced()
	srv := startServer(t, Config{Upstreams: []string{addr}, UpstreamTimeout: upstreamTimeout, MaxConcurrent: maxConcurrent}, idx)

	conn, err := net.Dial("udp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	baseline := runtime.NumGoroutine()
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond): // sampling interval
			}
		}
	}()

	// One reader for all replies, started before the first query; it
	// records each reply's latency.
	var sent [questions]atomic.Int64 // send time of question i, unix ns
	var answered, servfail, slow atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 65535)
		for answered.Load() < questions {
			_ = conn.SetReadDeadline(time.Now().Add(testTimeout))
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil || int(m.Id) >= questions {
				continue
			}
			// A question that waited on the upstream waited its timeout.
			if time.Since(time.Unix(0, sent[m.Id].Load())) > upstreamTimeout*9/10 {
				slow.Add(1)
			}
			if m.Rcode == dns.RcodeServerFailure {
				servfail.Add(1)
			}
			answered.Add(1)
		}
	}()
	// Bursts of 50, each sent once the replies have caught up with all but
	// the questions that may be waiting upstream: loopback drops datagrams
	// when a socket buffer overflows, and a lost query is not the point here.
	start := time.Now()
	for i := range questions {
		if i%50 == 0 {
			testenv.Await(t, "replies to catch up", 30*time.Second, func() error {
				if behind := int64(i) - answered.Load(); behind > maxConcurrent {
					return fmt.Errorf("%d questions without a reply", behind)
				}
				return nil
			})
		}
		q := new(dns.Msg).SetQuestion(fmt.Sprintf("e-%d.shop.svc.cluster.local.", i), dns.TypeA)
		q.Id = uint16(i)
		b, _ := q.Pack()
		sent[i].Store(time.Now().UnixNano())
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	<-readerDone
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled

	t.Logf("%d questions to a blackholed upstream (MaxConcurrent %d): goroutines %d before, peak %d; %d replies, %d SERVFAIL, %d after the upstream timeout, all within %v; upstream received %d queries",
		questions, maxConcurrent, baseline, peak.Load(), answered.Load(), servfail.Load(), slow.Load(), elapsed.Round(time.Millisecond), received.Load())
	if n := servfail.Load(); n != questions {
		t.Errorf("%d SERVFAIL of %d", n, questions)
	}
	// Each waiting question holds at most its handler and the shared query;
	// the rest are short-lived handlers that fail at once.
	if limit := int64(baseline + 2*maxConcurrent + 100); peak.Load() > limit {
		t.Errorf("goroutines peaked at %d, above %d (baseline %d + 2 x %d in flight + 100)", peak.Load(), limit, baseline, maxConcurrent)
	}
	// Only a question that got to ask upstream waits for its timeout.
	if slow.Load() > received.Load() {
		t.Errorf("%d questions waited, but only %d reached the upstream", slow.Load(), received.Load())
	}
	if received.Load() >= questions {
		t.Errorf("upstream received %d queries for %d questions: none was turned away", received.Load(), questions)
	}
	testenv.Await(t, "goroutines back to the baseline", 30*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > baseline+5 {
			return fmt.Errorf("%d goroutines, baseline %d", n, baseline)
		}
		return nil
	})
}

// TestUpstreamFailureCachedBriefly checks that after every upstream failed
// for a question, it is answered SERVFAIL without asking upstream again for
// failureTTL, then asked again.
func TestUpstreamFailureCachedBriefly(t *testing.T) {
	refusing := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		_ = w.WriteMsg(new(dns.Msg).SetRcode(r, dns.RcodeRefused))
	})
	clock := newFakeClock()
	srv := startServer(t, Config{Upstreams: []string{refusing.addr}}, externalIndex(), func(s *Server) {
		s.resolver.forwarder.now = clock.Now
	})
	ask := func() {
		t.Helper()
		if r := exchange(t, "udp", srv.Addr(), "payments.shop.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("rcode = %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
	}
	ask()
	ask()
	clock.Advance(failureTTL - time.Second)
	ask()
	if n := refusing.queries.Load(); n != 1 {
		t.Errorf("upstream queries within %v of the failure = %d, want 1", failureTTL, n)
	}
	clock.Advance(time.Second)
	ask()
	if n := refusing.queries.Load(); n != 2 {
		t.Errorf("upstream queries after %v = %d, want 2", failureTTL, n)
	}
	if _, err := srv.resolver.forwarder.resolve(context.Background(), "api.payments.example.com.", dns.TypeA); !errors.Is(err, errRecentFailure) {
		t.Errorf("resolve right after a failure: %v, want errRecentFailure", err)
	}
}

// TestOverloadAnswersServFailAtOnce holds MaxConcurrent questions at the
// upstream and checks that one more is answered SERVFAIL without waiting.
func TestOverloadAnswersServFailAtOnce(t *testing.T) {
	var release sync.Once
	gate := make(chan struct{})
	answer := zoneAnswer(upstreamZone())
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		<-gate
		answer(w, r)
	})
	t.Cleanup(func() { release.Do(func() { close(gate) }) })
	srv := startServer(t, Config{Upstreams: []string{up.addr}, MaxConcurrent: 2, UpstreamTimeout: 5 * time.Second}, externalIndex())

	held := make(chan *dns.Msg, 2)
	for _, name := range []string{"payments.shop.svc.cluster.local.", "short.shop.svc.cluster.local."} {
		go func() {
			r, _ := tryExchange("tcp", srv.Addr(), name, dns.TypeA)
			held <- r
		}()
	}
	testenv.Await(t, "two questions held at the upstream", 30*time.Second, func() error {
		if n := up.queries.Load(); n < 2 {
			return fmt.Errorf("%d upstream queries", n)
		}
		return nil
	})
	before := counterValue(t, upstreamOverloadTotal)
	start := time.Now()
	r := exchange(t, "udp", srv.Addr(), "brief.shop.svc.cluster.local.", dns.TypeA)
	if elapsed := time.Since(start); r.Rcode != dns.RcodeServerFailure || elapsed > time.Second {
		t.Errorf("third question: %s after %v, want SERVFAIL at once", dns.RcodeToString[r.Rcode], elapsed)
	}
	if got := counterValue(t, upstreamOverloadTotal) - before; got != 1 {
		t.Errorf("overload counted %v times, want 1", got)
	}
	release.Do(func() { close(gate) })
	for range 2 {
		if r := <-held; r == nil || r.Rcode != dns.RcodeSuccess {
			t.Errorf("held question: %v, want NOERROR once released", r)
		}
	}
}

// TestNonDataTypesNotForwarded checks that meta and obsolete types get
// NOTIMP and ANY the RFC 8482 answer, none of them going upstream.
func TestNonDataTypesNotForwarded(t *testing.T) {
	up := startUpstream(t, zoneAnswer(upstreamZone()))
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, externalIndex())
	for _, qtype := range []uint16{dns.TypeNone, dns.TypeMD, dns.TypeMF, dns.TypeMB, dns.TypeMG, dns.TypeMR, dns.TypeNXT, typeA6,
		dns.TypeOPT, dns.TypeTKEY, dns.TypeTSIG, dns.TypeMAILA, dns.TypeMAILB, 128, 200, 248} {
		for _, name := range []string{"payments.shop.svc.cluster.local.", "web.shop.svc.cluster.local."} {
			r := exchange(t, "udp", srv.Addr(), name, qtype)
			if r.Rcode != dns.RcodeNotImplemented || len(r.Answer) != 0 {
				t.Errorf("%s TYPE%d: %s with %d answers, want NOTIMP", name, qtype, dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		}
	}
	r := exchange(t, "udp", srv.Addr(), "payments.shop.svc.cluster.local.", dns.TypeANY)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Errorf("ANY: %s %v, want the CNAME alone", dns.RcodeToString[r.Rcode], r.Answer)
	}
	// A data type the server has no special case for still goes upstream.
	if r := exchange(t, "udp", srv.Addr(), "payments.shop.svc.cluster.local.", 65280); r.Rcode != dns.RcodeSuccess {
		t.Errorf("TYPE65280: %s, want NOERROR", dns.RcodeToString[r.Rcode])
	}
	if n := up.queries.Load(); n != 1 {
		t.Errorf("upstream received %d queries, want 1 (the private-use type only)", n)
	}
}
