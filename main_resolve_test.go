package main

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
)

// TestTargetResolverWithoutDNSServer: with the DNS server disabled, probes
// resolve target names through --dns-upstreams, as absolute names.
func TestTargetResolverWithoutDNSServer(t *testing.T) {
	asked := make(chan string, 16)
	upstream := testenv.ServeDNST(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		select {
		case asked <- q.Name:
		default:
		}
		switch {
		case q.Name != "primary.example.test.":
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(192, 0, 2, 7)})
		}
		_ = w.WriteMsg(m)
	})

	r := targetResolver(nil, config{dnsUpstreams: " " + upstream + " "})
	if r == nil {
		t.Fatal("no resolver for --dns-upstreams")
	}
	addrs, err := r.Resolve(t.Context(), "primary.example.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.7") {
		t.Fatalf("Resolve = %v, %v; want 192.0.2.7", addrs, err)
	}
	if q := <-asked; q != "primary.example.test." {
		t.Errorf("asked %q, want the absolute name", q)
	}
	if _, err := r.Resolve(t.Context(), "missing.example.test"); !errors.Is(err, health.ErrNoAddress) {
		t.Errorf("Resolve(missing) = %v, want ErrNoAddress", err)
	}
	if targetResolver(nil, config{}) != nil {
		t.Error("without upstreams, probes should use the system resolver (nil)")
	}
}
