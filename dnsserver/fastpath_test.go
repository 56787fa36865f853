package dnsserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netintent/netintent/internal/testenv"
)

// TestKeysAgree checks that the key the read loop takes from a request's
// bytes is the one the handler takes from the unpacked request, and that
// requests that differ in anything but their ID get different keys.
func TestKeysAgree(t *testing.T) {
	base := func() *dns.Msg { return new(dns.Msg).SetQuestion("web.shop.svc.cluster.local.", dns.TypeA) }
	cases := map[string]func(*dns.Msg){
		"plain":          func(*dns.Msg) {},
		"EDNS":           func(m *dns.Msg) { m.SetEdns0(1232, false) },
		"EDNS 4096":      func(m *dns.Msg) { m.SetEdns0(4096, false) },
		"DO":             func(m *dns.Msg) { m.SetEdns0(1232, true) },
		"no RD":          func(m *dns.Msg) { m.RecursionDesired = false },
		"CD":             func(m *dns.Msg) { m.CheckingDisabled = true },
		"AD":             func(m *dns.Msg) { m.AuthenticatedData = true },
		"Z":              func(m *dns.Msg) { m.Zero = true },
		"mixed case":     func(m *dns.Msg) { m.Question[0].Name = "Web.Shop.svc.cluster.local." },
		"AAAA":           func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA },
		"class CH":       func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS },
		"escaped label":  func(m *dns.Msg) { m.Question[0].Name = `we\.b.shop.svc.cluster.local.` },
		"EDNS version 1": func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) },
	}
	keys := map[string]string{}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			m := base()
			m.Id = 1
			edit(m)
			wire, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			fromWire, ok := wireKey(nil, wire)
			if !ok {
				t.Fatalf("wireKey refused %v", m)
			}
			unpacked := new(dns.Msg)
			if err := unpacked.Unpack(wire); err != nil {
				t.Fatal(err)
			}
			fromMsg, ok := msgKey(nil, unpacked)
			if !ok {
				t.Fatalf("msgKey refused %v", unpacked)
			}
			if !bytes.Equal(fromWire, fromMsg) {
				t.Errorf("keys differ:\n wire %x\n msg  %x", fromWire, fromMsg)
			}
			m.Id = 2
			other, _ := m.Pack()
			if again, _ := wireKey(nil, other); !bytes.Equal(again, fromWire) {
				t.Errorf("another ID changed the key")
			}
			for other, key := range keys {
				if key == string(fromWire) {
					t.Errorf("same key as %q", other)
				}
			}
			keys[name] = string(fromWire)
		})
	}
}

// TestKeysRefuseOtherShapes checks that requests the cache does not serve
// get no key, from their bytes or unpacked.
func TestKeysRefuseOtherShapes(t *testing.T) {
	cases := map[string]func(*dns.Msg){
		"response":      func(m *dns.Msg) { m.Response = true },
		"opcode NOTIFY": func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify },
		"two questions": func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) },
		"an answer": func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeA, Class: dns.ClassINET}}}
		},
		"EDNS option": func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}}
		},
		"two OPT": func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.Extra = append(m.Extra, m.Extra[0])
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			m := new(dns.Msg).SetQuestion("web.shop.svc.cluster.local.", dns.TypeA)
			edit(m)
			wire, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := wireKey(nil, wire); ok {
				t.Error("wireKey gave a key")
			}
			if _, ok := msgKey(nil, m); ok {
				t.Error("msgKey gave a key")
			}
		})
	}
	if _, ok := wireKey(nil, []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'e'}); ok {
		t.Error("wireKey gave a key for a truncated name")
	}
	compressed := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}
	if _, ok := wireKey(nil, compressed); ok {
		t.Error("wireKey gave a key for a compressed name")
	}
	trailing, _ := new(dns.Msg).SetQuestion("web.shop.svc.cluster.local.", dns.TypeA).Pack()
	if _, ok := wireKey(nil, append(trailing, 0)); ok {
		t.Error("wireKey gave a key for a request with bytes after it")
	}
}

// TestPackedRepliesFollowTheIndex asks the same questions again and again
// over UDP, so that the read loop answers from its packed replies, and
// checks each answer against the index as it changes.
func TestPackedRepliesFollowTheIndex(t *testing.T) {
	idx := NewIndex()
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.0.0.10"}))
	idx.MarkSynced()
	srv := startServer(t, Config{}, idx)
	hits := func() float64 {
		return counterValue(t, requestsTotal.WithLabelValues("A", "NOERROR"))
	}

	ask := func(name string, edit ...func(*dns.Msg)) *dns.Msg {
		t.Helper()
		return exchange(t, "udp", srv.Addr(), name, dns.TypeA, edit...)
	}
	// The counters rise after each reply is sent: the first answer (from
	// the handler, not a packed reply) may be counted after it arrives.
	base, packedBefore := hits(), counterValue(t, packedRepliesTotal)
	first := ask("web.shop.svc.cluster.local.")
	before := base + 1
	for i := range 5 {
		r := ask("web.shop.svc.cluster.local.")
		if got := rrStrings(r.Answer); len(got) != 1 || got[0] != rrStrings(first.Answer)[0] || r.Rcode != first.Rcode || r.Authoritative != first.Authoritative {
			t.Fatalf("answer %d: %v, first %v", i, r, first)
		}
	}
	testenv.Await(t, "5 answers counted, all packed replies", 30*time.Second, func() error {
		if got := hits() - before; got != 5 {
			return fmt.Errorf("the requests counter rose by %v for 5 answers", got)
		}
		if got := counterValue(t, packedRepliesTotal) - packedBefore; got != 5 {
			return fmt.Errorf("%v of 5 answers were packed replies", got)
		}
		return nil
	})

	// The client's buffer size and case are part of the question: each
	// gets its own reply.
	r := ask("WEB.shop.svc.cluster.local.", func(m *dns.Msg) { m.SetEdns0(1232, true) })
	if r.Question[0].Name != "WEB.shop.svc.cluster.local." || r.IsEdns0() == nil || !r.IsEdns0().Do() {
		t.Errorf("reply to a mixed-case question with DO: %v", r)
	}
	if r := ask("web.shop.svc.cluster.local."); r.IsEdns0() != nil {
		t.Errorf("reply without EDNS has an OPT record: %v", r)
	}

	// A change in the index is answered at once.
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.0.0.11"}))
	if got := rrStrings(ask("web.shop.svc.cluster.local.").Answer); len(got) != 1 || !bytes.Contains([]byte(got[0]), []byte("10.0.0.11")) {
		t.Errorf("after the Service changed: %v", got)
	}
	ask("gone.shop.svc.cluster.local.")
	idx.UpsertService(clusterIPService("shop", "gone", []string{"10.0.0.12"}))
	if r := ask("gone.shop.svc.cluster.local."); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("a Service made after its name was answered NXDOMAIN: %v", r)
	}
}

// TestPackedRepliesWithUpstream checks that an ExternalName's reply, which
// an upstream took part in, is given again packed only while its TTLs allow:
// with TTL 0 every question reaches the upstream.
func TestPackedRepliesWithUpstream(t *testing.T) {
	up := startUpstream(t, zoneAnswer(map[string][]string{
		"api.example.com.":   {"api.example.com. 60 IN A 192.0.2.1"},
		"fresh.example.com.": {"fresh.example.com. 0 IN A 192.0.2.2"},
	}))
	idx := NewIndex()
	idx.UpsertService(externalNameService("shop", "api", "api.example.com"))
	idx.UpsertService(externalNameService("shop", "fresh", "fresh.example.com"))
	idx.MarkSynced()
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, idx)

	packed := counterValue(t, packedRepliesTotal)
	for i := range 3 {
		r := exchange(t, "udp", srv.Addr(), "api.shop.svc.cluster.local.", dns.TypeA)
		if len(r.Answer) != 2 || r.Authoritative {
			t.Fatalf("answer %d: %v", i, r)
		}
	}
	if got := counterValue(t, packedRepliesTotal) - packed; got < 1 {
		t.Errorf("no answer to a repeated ExternalName question was packed")
	}

	packed, asked := counterValue(t, packedRepliesTotal), up.queries.Load()
	for i := range 3 {
		r := exchange(t, "udp", srv.Addr(), "fresh.shop.svc.cluster.local.", dns.TypeA)
		if len(r.Answer) != 2 || r.Answer[1].Header().Ttl != 0 {
			t.Fatalf("answer %d: %v", i, r)
		}
	}
	if got := counterValue(t, packedRepliesTotal) - packed; got != 0 {
		t.Errorf("%v answers with TTL 0 were packed replies", got)
	}
	if got := up.queries.Load() - asked; got != 3 {
		t.Errorf("the upstream was asked %d times for 3 questions with TTL 0", got)
	}
}

func TestUpstreamHold(t *testing.T) {
	rr := func(ttl uint32) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: "a.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}}
	}
	cases := []struct {
		answer []dns.RR
		want   time.Duration
	}{
		{nil, 0},
		{[]dns.RR{rr(60)}, maxUpstreamHold},
		{[]dns.RR{rr(60), rr(0)}, 0},
		{[]dns.RR{rr(30), rr(1)}, time.Second},
	}
	for _, tc := range cases {
		if got := upstreamHold(tc.answer); got != tc.want {
			t.Errorf("upstreamHold(%v) = %v, want %v", tc.answer, got, tc.want)
		}
	}
}

// TestPackedRepliesOnAWildcardAddress checks that packed replies from a
// socket bound to every address come from the address the request was sent
// to: the client's connected socket takes no reply from any other.
func TestPackedRepliesOnAWildcardAddress(t *testing.T) {
	idx := NewIndex()
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.0.0.10"}))
	idx.MarkSynced()
	srv, err := New(Config{ListenAddress: "0.0.0.0:0"}, idx)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	select {
	case <-srv.Listening():
	case err := <-done:
		t.Fatalf("Start: %v", err)
	}
	_, port, _ := net.SplitHostPort(srv.Addr())
	packed := counterValue(t, packedRepliesTotal)
	for range 3 {
		r := exchange(t, "udp", net.JoinHostPort("127.0.0.1", port), "web.shop.svc.cluster.local.", dns.TypeA)
		if len(r.Answer) != 1 {
			t.Fatalf("reply: %v", r)
		}
	}
	if got := counterValue(t, packedRepliesTotal) - packed; got != 2 {
		t.Errorf("%v of the 2 repeated answers were packed replies", got)
	}
}

// FuzzPackedKeys checks, for any bytes, that a request the read loop keys
// unpacks, and that the handler's key for it is the same: otherwise a
// packed reply could answer a request it was not made for.
func FuzzPackedKeys(f *testing.F) {
	for _, edit := range []func(*dns.Msg){
		func(*dns.Msg) {},
		func(m *dns.Msg) { m.SetEdns0(1232, true) },
		func(m *dns.Msg) { m.Question[0].Name = `a\.b\000.Web.shop.svc.cluster.local.` },
	} {
		m := new(dns.Msg).SetQuestion("web.shop.svc.cluster.local.", dns.TypeA)
		edit(m)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fromWire, ok := wireKey(nil, b)
		if !ok {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("keyed request does not unpack: %v", err)
		}
		fromMsg, ok := msgKey(nil, m)
		if !ok {
			t.Fatalf("no key for the unpacked request %v", m)
		}
		if !bytes.Equal(fromWire, fromMsg) {
			t.Fatalf("keys differ:\n wire %x\n msg  %x", fromWire, fromMsg)
		}
	})
}

// TestPackedRepliesBounded fills the packed cache past its bounds: it starts
// over rather than grow, and a new snapshot empties it.
func TestPackedRepliesBounded(t *testing.T) {
	c := newPackedReplies()
	s1, s2 := &snapshot{}, &snapshot{}
	wire := make([]byte, 1000)
	for i := range maxPackedBytes/1000 + 10 {
		c.put(fmt.Appendf(nil, "key-%d", i), s1, 0, time.Now, wire, dns.TypeA, dns.RcodeSuccess)
		if c.bytes > maxPackedBytes || len(c.entries) > maxPackedReplies {
			t.Fatalf("after %d puts: %d entries, %d bytes", i+1, len(c.entries), c.bytes)
		}
	}
	c.put([]byte("last"), s1, 0, time.Now, wire, dns.TypeA, dns.RcodeSuccess)
	if _, ok := c.get([]byte("last"), s1, time.Now); !ok {
		t.Error("the last reply put is not there")
	}
	if _, ok := c.get([]byte("last"), s2, time.Now); ok {
		t.Error("a reply answered from another snapshot was given")
	}
	c.put([]byte("new"), s2, 0, time.Now, wire, dns.TypeA, dns.RcodeSuccess)
	if len(c.entries) != 1 || c.bytes != len("new")+len(wire) {
		t.Errorf("after a new snapshot: %d entries, %d bytes", len(c.entries), c.bytes)
	}
}
