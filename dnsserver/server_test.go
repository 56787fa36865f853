package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// bigHeadlessIndex holds shop/big, a headless Service with 200 ready endpoints.
func bigHeadlessIndex() *Index {
	idx := NewIndex()
	idx.UpsertService(headlessService("shop", "big"))
	var eps []discoveryv1.Endpoint
	for i := range 200 {
		eps = append(eps, endpoint(fmt.Sprintf("10.3.%d.%d", i/100, i%100+1), ""))
	}
	// The operator writes at most 100 endpoints a slice.
	idx.UpsertEndpointSlice(endpointSlice("shop", "big-1", "big", discoveryv1.AddressTypeIPv4, nil, eps[:100]...))
	idx.UpsertEndpointSlice(endpointSlice("shop", "big-2", "big", discoveryv1.AddressTypeIPv4, nil, eps[100:]...))
	idx.MarkSynced()
	return idx
}

// rawUDP sends a query over a plain UDP socket and returns the reply's bytes,
// to see its size on the wire.
func rawUDP(t *testing.T, addr string, q *dns.Msg) []byte {
	t.Helper()
	packed, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(packed); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestTruncation(t *testing.T) {
	srv := startServer(t, Config{}, bigHeadlessIndex())
	const name = "big.shop.svc.cluster.local."

	t.Run("UDP without EDNS", func(t *testing.T) {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA)
		b := rawUDP(t, srv.Addr(), q)
		if len(b) > dns.MinMsgSize {
			t.Errorf("reply is %d bytes, want at most %d", len(b), dns.MinMsgSize)
		}
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if !r.Truncated || len(r.Answer) >= 200 {
			t.Errorf("TC = %v with %d answers, want TC and fewer than 200", r.Truncated, len(r.Answer))
		}
		if r.IsEdns0() != nil {
			t.Error("reply has an OPT record, but the query had none")
		}
	})

	t.Run("UDP with EDNS 4096", func(t *testing.T) {
		q := new(dns.Msg).SetQuestion(name, dns.TypeA).SetEdns0(4096, false)
		b := rawUDP(t, srv.Addr(), q)
		if len(b) > maxUDPSize {
			t.Errorf("reply is %d bytes, want at most %d (the server's cap)", len(b), maxUDPSize)
		}
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if !r.Truncated {
			t.Error("TC not set")
		}
		opt := r.IsEdns0()
		if opt == nil || opt.UDPSize() != maxUDPSize {
			t.Errorf("OPT = %v, want one advertising %d", opt, maxUDPSize)
		}
	})

	t.Run("TCP", func(t *testing.T) {
		r := exchange(t, "tcp", srv.Addr(), name, dns.TypeA)
		if r.Truncated || len(r.Answer) != 200 {
			t.Errorf("TC = %v with %d answers, want all 200", r.Truncated, len(r.Answer))
		}
	})

	t.Run("small answers are not truncated", func(t *testing.T) {
		idx := fixtureIndex()
		small := startServer(t, Config{}, idx)
		r := exchange(t, "udp", small.Addr(), "_postgres._tcp.db.shop.svc.cluster.local.", dns.TypeSRV)
		if r.Truncated || len(r.Answer) != 3 || len(r.Extra) != 4 {
			t.Errorf("TC = %v, %d answers, %d additional; want no TC, 3 and 4", r.Truncated, len(r.Answer), len(r.Extra))
		}
	})
}

func TestEDNS(t *testing.T) {
	srv := startServer(t, Config{}, fixtureIndex())
	const name = "web.shop.svc.cluster.local."

	r := exchange(t, "udp", srv.Addr(), name, dns.TypeA, func(m *dns.Msg) { m.SetEdns0(512, true) })
	opt := r.IsEdns0()
	if opt == nil || opt.UDPSize() != maxUDPSize || !opt.Do() || opt.Version() != 0 {
		t.Errorf("OPT = %v, want size %d, DO copied, version 0", opt, maxUDPSize)
	}
	if len(r.Answer) != 1 {
		t.Errorf("answer = %v", r.Answer)
	}

	r = exchange(t, "udp", srv.Addr(), name, dns.TypeA, func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
	})
	if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
		t.Errorf("rcode %s with OPT %v, want BADVERS with an OPT and no answer", dns.RcodeToString[r.Rcode], r.IsEdns0())
	}
}

// TestMalformedRequests covers what miekg's accept function and the handler
// refuse before any lookup.
func TestMalformedRequests(t *testing.T) {
	srv := startServer(t, Config{}, fixtureIndex())
	const name = "web.shop.svc.cluster.local."
	cases := []struct {
		desc  string
		edit  func(*dns.Msg)
		rcode int
	}{
		{"NOTIFY", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented},
		{"UPDATE", func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, dns.RcodeNotImplemented},
		{"STATUS", func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus }, dns.RcodeNotImplemented},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
		{"no question", func(m *dns.Msg) { m.Question = nil }, dns.RcodeFormatError},
		{"two OPT records", func(m *dns.Msg) { m.SetEdns0(1232, false); m.SetEdns0(1232, false) }, dns.RcodeFormatError},
		{"class CHAOS", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			r := exchange(t, "udp", srv.Addr(), name, dns.TypeA, tc.edit)
			if r.Rcode != tc.rcode || len(r.Answer) != 0 {
				t.Errorf("rcode %s with %d answers, want %s and none", dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode])
			}
		})
	}
}

func TestServFailBeforeSync(t *testing.T) {
	idx := NewIndex()
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.96.0.10"}))
	srv := startServer(t, Config{}, idx)
	if err := srv.ReadyCheck(nil); !errors.Is(err, ErrNotSynced) {
		t.Errorf("ReadyCheck = %v, want ErrNotSynced", err)
	}
	for _, name := range []string{"web.shop.svc.cluster.local.", "missing.shop.svc.cluster.local.", "svc.cluster.local."} {
		r := exchange(t, "udp", srv.Addr(), name, dns.TypeA)
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s before sync: %s, want SERVFAIL", name, dns.RcodeToString[r.Rcode])
		}
	}
	if r := exchange(t, "udp", srv.Addr(), "example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Errorf("out of zone before sync: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	idx.MarkSynced()
	if err := srv.ReadyCheck(nil); err != nil {
		t.Errorf("ReadyCheck after sync = %v", err)
	}
	if r := exchange(t, "udp", srv.Addr(), "web.shop.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after sync: %s %v", dns.RcodeToString[r.Rcode], r.Answer)
	}
	if r := exchange(t, "udp", srv.Addr(), "missing.shop.svc.cluster.local.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("after sync: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

func TestPanicRecovered(t *testing.T) {
	const (
		boom      = "boom.shop.svc.cluster.local."   // the lookup panics
		badRecord = "broken.shop.svc.cluster.local." // the reply cannot be packed, without a panic
	)
	srv := startServer(t, Config{}, fixtureIndex(), func(s *Server) {
		lookup := s.resolver.lookup
		s.resolver.lookup = func(snap *snapshot, qname string, qtype uint16, c *chain) Result {
			switch qname {
			case boom:
				panic("injected fault")
			case badRecord:
				return Result{Kind: Success, Answer: []dns.RR{nil}}
			}
			return lookup(snap, qname, qtype, c)
		}
	})
	before := counterValue(t, panicsTotal)
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{boom, badRecord} {
			r := exchange(t, network, srv.Addr(), name, dns.TypeA)
			if r.Rcode != dns.RcodeServerFailure {
				t.Errorf("%s over %s: %s, want SERVFAIL", name, network, dns.RcodeToString[r.Rcode])
			}
			r = exchange(t, network, srv.Addr(), "web.shop.svc.cluster.local.", dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Errorf("query after the panic over %s: %s %v", network, dns.RcodeToString[r.Rcode], r.Answer)
			}
		}
	}
	if got := counterValue(t, panicsTotal) - before; got != 2 {
		t.Errorf("panics counted: %v, want 2 (one a transport)", got)
	}
}

// TestTCPConnectionLimits checks that a connection is closed after
// MaxTCPQueries queries and after TCPIdleTimeout without one.
func TestTCPConnectionLimits(t *testing.T) {
	srv := startServer(t, Config{MaxTCPQueries: 3, TCPIdleTimeout: 200 * time.Millisecond}, fixtureIndex())
	q := new(dns.Msg).SetQuestion("web.shop.svc.cluster.local.", dns.TypeA)

	conn, err := dns.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	for i := range 3 {
		if _, _, err := c.ExchangeWithConn(q, conn); err != nil {
			t.Fatalf("query %d on one connection: %v", i+1, err)
		}
	}
	if _, _, err := c.ExchangeWithConn(q, conn); err == nil {
		t.Error("fourth query on one connection answered, want the connection closed after 3")
	}

	idle, err := dns.DialTimeout("tcp", srv.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, _, err := c.ExchangeWithConn(q, idle); err != nil {
		t.Fatal(err)
	}
	// The server closes the idle connection: the read returns EOF well
	// before the 5 s deadline.
	start := time.Now()
	if err := idle.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.ReadMsg(); err == nil {
		t.Error("read a message nobody asked for")
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("idle connection still open after %v", elapsed)
	}
}

func TestServerStops(t *testing.T) {
	srv, err := New(Config{ListenAddress: "127.0.0.1:0"}, fixtureIndex())
	if err != nil {
		t.Fatal(err)
	}
	if srv.NeedLeaderElection() {
		t.Error("the DNS server must run on every replica")
	}
	if err := srv.ReadyCheck(nil); !errors.Is(err, ErrNotListening) {
		t.Errorf("ReadyCheck before Start = %v, want ErrNotListening", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	<-srv.Listening()
	if err := srv.ReadyCheck(nil); err != nil {
		t.Errorf("ReadyCheck while serving = %v", err)
	}
	addr := srv.Addr()
	exchange(t, "udp", addr, "web.shop.svc.cluster.local.", dns.TypeA)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start = %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Start did not return after cancel")
	}
	// The port is free again.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after stop: %v", err)
	}
	ln.Close()
}

func TestNewRejectsBadConfig(t *testing.T) {
	idx := NewIndex()
	for _, cfg := range []Config{
		{ClusterDomain: "bad..domain"},
		{ListenAddress: "no-port"},
		{TTL: 1 << 31},
		{CacheMaxBytes: 1000},
		{CacheMaxBytes: -1},
		{MaxConcurrent: -1},
	} {
		if _, err := New(cfg, idx); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New with a nil index succeeded")
	}
	srv, err := New(Config{Upstreams: []string{"192.0.2.1", "[2001:db8::1]", "192.0.2.2:5353"}}, idx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1:53", "[2001:db8::1]:53", "192.0.2.2:5353"}
	if fmt.Sprint(srv.cfg.Upstreams) != fmt.Sprint(want) {
		t.Errorf("upstreams = %v, want %v", srv.cfg.Upstreams, want)
	}
}

// counterValue reads a counter's current value.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
