package dnsserver

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

// hostileUpstream answers like a recursive resolver that does not know the
// cluster zone, or that lies about it: each name has a fixed reply, with
// records in every section.
func hostileUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("bad record %q: %v", s, err)
		}
		return r
	}
	foreignNS := func() []dns.RR {
		return []dns.RR{
			rr("example.org. 3600 IN NS ns.attacker.example."),
			rr("svc.cluster.local. 3600 IN SOA ns.attacker.example. root.attacker.example. 1 7200 1800 86400 3600"),
		}
	}
	return startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.RecursionAvailable = true
		switch strings.ToLower(r.Question[0].Name) {
		case "via-nx.example.org.":
			// The CNAME into the zone, with the resolver's NXDOMAIN for
			// the target (it does not know .local).
			m.Rcode = dns.RcodeNameError
			m.Answer = []dns.RR{rr("via-nx.example.org. 60 IN CNAME web.shop.svc.cluster.local.")}
			m.Ns = []dns.RR{rr("local. 3600 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400")}
		case "via-spoof.example.org.":
			// The CNAME into the zone, then forged data for the in-zone
			// name: an address, and a CNAME leading out again.
			m.Answer = []dns.RR{
				rr("via-spoof.example.org. 60 IN CNAME web.shop.svc.cluster.local."),
				rr("web.shop.svc.cluster.local. 60 IN A 6.6.6.6"),
				rr("web.shop.svc.cluster.local. 60 IN CNAME evil.example.org."),
				rr("evil.example.org. 60 IN A 6.6.6.7"),
			}
			m.Ns = foreignNS()
			m.Extra = []dns.RR{rr("web.shop.svc.cluster.local. 60 IN A 6.6.6.8")}
		case "via-missing.example.org.":
			m.Answer = []dns.RR{
				rr("via-missing.example.org. 60 IN CNAME absent.shop.svc.cluster.local."),
				rr("absent.shop.svc.cluster.local. 60 IN A 6.6.6.6"),
			}
		case "foreign.example.org.":
			if r.Question[0].Qtype == dns.TypeA {
				m.Answer = []dns.RR{
					rr("foreign.example.org. 60 IN A 192.0.2.50"),
					rr("example.org. 60 IN NS ns.attacker.example."),
					rr("web.shop.svc.cluster.local. 60 IN A 6.6.6.6"),
				}
			}
			m.Ns = foreignNS()
			m.Extra = []dns.RR{rr("ns.attacker.example. 60 IN A 6.6.6.9")}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
}

func TestUpstreamNeverAnswersForTheZone(t *testing.T) {
	up := hostileUpstream(t)
	idx := NewIndex()
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.96.0.10"}, servicePort("http", corev1.ProtocolTCP, 80)))
	idx.UpsertService(externalNameService("shop", "nx", "via-nx.example.org"))
	idx.UpsertService(externalNameService("shop", "spoof", "via-spoof.example.org"))
	idx.UpsertService(externalNameService("shop", "missing", "via-missing.example.org"))
	idx.UpsertService(externalNameService("shop", "foreign", "foreign.example.org"))
	idx.MarkSynced()
	srv := startServer(t, Config{Upstreams: []string{up.addr}}, idx)

	cases := []struct {
		desc   string
		name   string
		qtype  uint16
		rcode  int
		answer []string
		aa     bool
		soa    bool // the zone's own SOA in authority
	}{
		{desc: "CNAME into the zone answered NXDOMAIN upstream", name: "nx.shop.svc.cluster.local.", qtype: dns.TypeA, aa: true, answer: []string{
			"nx.shop.svc.cluster.local. 30 IN CNAME via-nx.example.org.",
			"via-nx.example.org. 60 IN CNAME web.shop.svc.cluster.local.",
			"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
		}},
		{desc: "spoofed in-zone records", name: "spoof.shop.svc.cluster.local.", qtype: dns.TypeA, aa: true, answer: []string{
			"spoof.shop.svc.cluster.local. 30 IN CNAME via-spoof.example.org.",
			"via-spoof.example.org. 60 IN CNAME web.shop.svc.cluster.local.",
			"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
		}},
		{desc: "spoofed in-zone records, NODATA in the zone", name: "spoof.shop.svc.cluster.local.", qtype: dns.TypeAAAA, aa: true, soa: true, answer: []string{
			"spoof.shop.svc.cluster.local. 30 IN CNAME via-spoof.example.org.",
			"via-spoof.example.org. 60 IN CNAME web.shop.svc.cluster.local.",
		}},
		{desc: "upstream data for a missing in-zone name", name: "missing.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true, soa: true, answer: []string{
			"missing.shop.svc.cluster.local. 30 IN CNAME via-missing.example.org.",
			"via-missing.example.org. 60 IN CNAME absent.shop.svc.cluster.local.",
		}},
		{desc: "foreign NS and SOA", name: "foreign.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"foreign.shop.svc.cluster.local. 30 IN CNAME foreign.example.org.",
			"foreign.example.org. 60 IN A 192.0.2.50",
		}},
		{desc: "foreign SOA on NODATA", name: "foreign.shop.svc.cluster.local.", qtype: dns.TypeTXT, answer: []string{
			"foreign.shop.svc.cluster.local. 30 IN CNAME foreign.example.org.",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				r := exchange(t, network, srv.Addr(), tc.name, tc.qtype)
				if r.Rcode != tc.rcode {
					t.Errorf("%s: rcode = %s, want %s", network, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if got, want := rrStrings(r.Answer), parseRRs(t, tc.answer); !slices.Equal(got, want) {
					t.Errorf("%s: answer:\n got %q\nwant %q", network, got, want)
				}
				if r.Authoritative != tc.aa {
					t.Errorf("%s: AA = %v, want %v", network, r.Authoritative, tc.aa)
				}
				if len(r.Extra) != 0 {
					t.Errorf("%s: additional = %v, want none", network, r.Extra)
				}
				switch {
				case tc.soa:
					if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].(*dns.SOA).Ns != "ns.dns.cluster.local." {
						t.Errorf("%s: authority = %v, want the zone's own SOA", network, r.Ns)
					}
				case len(r.Ns) != 0:
					t.Errorf("%s: authority = %v, want none", network, r.Ns)
				}
			}
		})
	}
}
