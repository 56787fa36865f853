package dnsserver

import (
	"fmt"
	"slices"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// fixtureIndex is a synced index holding one of each kind of Service:
//
//	shop/web      ClusterIP, dual stack, ports http/tcp, dns/udp and an unnamed one
//	shop/fast     ClusterIP with a TTL annotation of 5, endpoints api-0
//	              (10.2.0.1), fd00:: without a hostname, 10.2.0.2 not ready
//	shop/db       headless: db-0 (IPv4 and IPv6), db-1 (readiness unknown),
//	              10.1.0.3 without a hostname, db-3 not ready
//	shop/empty    headless without endpoints
//	shop/payments ExternalName to api.payments.example.com
//	shop/alias    ExternalName to web.shop.svc.cluster.local (in the zone)
func fixtureIndex() *Index {
	idx := NewIndex()
	addFixtures(idx)
	idx.MarkSynced()
	return idx
}

func addFixtures(idx *Index) {
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.96.0.10", "fd00::10"},
		servicePort("http", corev1.ProtocolTCP, 80),
		servicePort("dns", corev1.ProtocolUDP, 53),
		servicePort("", corev1.ProtocolTCP, 9090)))
	idx.UpsertService(withTTL(clusterIPService("shop", "fast", []string{"10.96.0.11"}, servicePort("http", corev1.ProtocolTCP, 80)), "5"))
	idx.UpsertService(headlessService("shop", "db", servicePort("postgres", corev1.ProtocolTCP, 5432)))
	pg := []discoveryv1.EndpointPort{endpointPort("postgres", corev1.ProtocolTCP, 15432)}
	idx.UpsertEndpointSlice(endpointSlice("shop", "db-v4", "db", discoveryv1.AddressTypeIPv4, pg,
		endpoint("10.1.0.1", "db-0"),
		unknownReadiness(endpoint("10.1.0.2", "db-1")),
		endpoint("10.1.0.3", ""),
		notReady(endpoint("10.1.0.4", "db-3"))))
	idx.UpsertEndpointSlice(endpointSlice("shop", "db-v6", "db", discoveryv1.AddressTypeIPv6, pg,
		endpoint("fd00::1", "db-0")))
	idx.UpsertEndpointSlice(endpointSlice("shop", "fast-v4", "fast", discoveryv1.AddressTypeIPv4,
		[]discoveryv1.EndpointPort{endpointPort("http", corev1.ProtocolTCP, 8080)},
		endpoint("10.2.0.1", "api-0"), notReady(endpoint("10.2.0.2", ""))))
	idx.UpsertEndpointSlice(endpointSlice("shop", "fast-v6", "fast", discoveryv1.AddressTypeIPv6, nil, endpoint("fd00::", "")))
	idx.UpsertService(headlessService("shop", "empty"))
	idx.UpsertService(externalNameService("shop", "payments", "api.payments.example.com"))
	idx.UpsertService(externalNameService("shop", "alias", "web.shop.svc.cluster.local"))
}

// dnsCase is one question and the reply expected for it.
type dnsCase struct {
	name    string
	qtype   uint16
	network string // "udp" unless set
	rcode   int
	answer  []string
	extra   []string
	// soa asks for the zone's SOA, alone, in the authority section.
	soa bool
}

func TestRecordForms(t *testing.T) {
	srv := startServer(t, Config{}, fixtureIndex())
	cases := []dnsCase{
		// Services with a cluster IP
		{name: "web.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"web.shop.svc.cluster.local. 30 IN A 10.96.0.10"}},
		{name: "web.shop.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"web.shop.svc.cluster.local. 30 IN AAAA fd00::10"}},
		{name: "WEB.Shop.SVC.cluster.LOCAL.", qtype: dns.TypeA, answer: []string{"WEB.Shop.SVC.cluster.LOCAL. 30 IN A 10.96.0.10"}},
		{name: "web.shop.svc.cluster.local.", qtype: dns.TypeA, network: "tcp", answer: []string{"web.shop.svc.cluster.local. 30 IN A 10.96.0.10"}},
		{name: "web.shop.svc.cluster.local.", qtype: dns.TypeTXT, soa: true},
		{name: "web.shop.svc.cluster.local.", qtype: dns.TypeANY, answer: []string{`web.shop.svc.cluster.local. 30 IN HINFO "RFC8482" ""`}},
		{name: "fast.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"fast.shop.svc.cluster.local. 5 IN A 10.96.0.11"}},
		{name: "_http._tcp.fast.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.fast.shop.svc.cluster.local. 5 IN SRV 0 100 80 fast.shop.svc.cluster.local."},
			extra:  []string{"fast.shop.svc.cluster.local. 5 IN A 10.96.0.11"}},
		{name: "_http._tcp.web.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.web.shop.svc.cluster.local. 30 IN SRV 0 50 80 web.shop.svc.cluster.local."},
			extra: []string{
				"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
				"web.shop.svc.cluster.local. 30 IN AAAA fd00::10",
			}},
		{name: "_dns._udp.web.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_dns._udp.web.shop.svc.cluster.local. 30 IN SRV 0 50 53 web.shop.svc.cluster.local."},
			extra: []string{
				"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
				"web.shop.svc.cluster.local. 30 IN AAAA fd00::10",
			}},
		// The bare name: one SRV per port, named or not; weights split
		// 100 over port x address pairs, as CoreDNS does.
		{name: "web.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{
				"web.shop.svc.cluster.local. 30 IN SRV 0 16 80 web.shop.svc.cluster.local.",
				"web.shop.svc.cluster.local. 30 IN SRV 0 16 53 web.shop.svc.cluster.local.",
				"web.shop.svc.cluster.local. 30 IN SRV 0 16 9090 web.shop.svc.cluster.local.",
			},
			extra: []string{
				"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
				"web.shop.svc.cluster.local. 30 IN AAAA fd00::10",
			}},
		{name: "fast.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"fast.shop.svc.cluster.local. 5 IN SRV 0 100 80 fast.shop.svc.cluster.local."},
			extra:  []string{"fast.shop.svc.cluster.local. 5 IN A 10.96.0.11"}},
		// Endpoint names of a Service with a cluster IP, as CoreDNS answers
		// them.
		{name: "api-0.fast.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"api-0.fast.shop.svc.cluster.local. 5 IN A 10.2.0.1"}},
		{name: "fd00--0.fast.shop.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"fd00--0.fast.shop.svc.cluster.local. 5 IN AAAA fd00::"}},
		{name: "10-2-0-2.fast.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "api-0.fast.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"api-0.fast.shop.svc.cluster.local. 5 IN SRV 0 100 8080 api-0.fast.shop.svc.cluster.local."},
			extra:  []string{"api-0.fast.shop.svc.cluster.local. 5 IN A 10.2.0.1"}},
		{name: "fd00--0.fast.shop.svc.cluster.local.", qtype: dns.TypeSRV, soa: true}, // no ports
		{name: "db-0.db.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"db-0.db.shop.svc.cluster.local. 30 IN SRV 0 50 15432 db-0.db.shop.svc.cluster.local."},
			extra: []string{
				"db-0.db.shop.svc.cluster.local. 30 IN A 10.1.0.1",
				"db-0.db.shop.svc.cluster.local. 30 IN AAAA fd00::1",
			}},
		{name: "_http._tcp.web.shop.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "__tcp.web.shop.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "_._tcp.web.shop.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "_http._udp.web.shop.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "_tcp.web.shop.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "_sctp.web.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "db-0.web.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "a.b.web.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},

		// Headless Service: only ready endpoints
		{name: "db.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"db.shop.svc.cluster.local. 30 IN A 10.1.0.1",
			"db.shop.svc.cluster.local. 30 IN A 10.1.0.2",
			"db.shop.svc.cluster.local. 30 IN A 10.1.0.3",
		}},
		{name: "db.shop.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"db.shop.svc.cluster.local. 30 IN AAAA fd00::1"}},
		{name: "db-0.db.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"db-0.db.shop.svc.cluster.local. 30 IN A 10.1.0.1"}},
		{name: "db-0.db.shop.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"db-0.db.shop.svc.cluster.local. 30 IN AAAA fd00::1"}},
		{name: "db-1.db.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"db-1.db.shop.svc.cluster.local. 30 IN A 10.1.0.2"}},
		{name: "db-1.db.shop.svc.cluster.local.", qtype: dns.TypeAAAA, soa: true},
		{name: "10-1-0-3.db.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"10-1-0-3.db.shop.svc.cluster.local. 30 IN A 10.1.0.3"}},
		{name: "db-3.db.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "10-1-0-4.db.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "_postgres._tcp.db.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{
				"_postgres._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 25 15432 db-0.db.shop.svc.cluster.local.",
				"_postgres._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 25 15432 db-1.db.shop.svc.cluster.local.",
				"_postgres._tcp.db.shop.svc.cluster.local. 30 IN SRV 0 25 15432 10-1-0-3.db.shop.svc.cluster.local.",
			},
			extra: []string{
				"db-0.db.shop.svc.cluster.local. 30 IN A 10.1.0.1",
				"db-0.db.shop.svc.cluster.local. 30 IN AAAA fd00::1",
				"db-1.db.shop.svc.cluster.local. 30 IN A 10.1.0.2",
				"10-1-0-3.db.shop.svc.cluster.local. 30 IN A 10.1.0.3",
			}},
		{name: "_tcp.db.shop.svc.cluster.local.", qtype: dns.TypeSRV, soa: true},
		{name: "db.shop.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{
				"db.shop.svc.cluster.local. 30 IN SRV 0 25 15432 db-0.db.shop.svc.cluster.local.",
				"db.shop.svc.cluster.local. 30 IN SRV 0 25 15432 db-1.db.shop.svc.cluster.local.",
				"db.shop.svc.cluster.local. 30 IN SRV 0 25 15432 10-1-0-3.db.shop.svc.cluster.local.",
			},
			extra: []string{
				"db-0.db.shop.svc.cluster.local. 30 IN A 10.1.0.1",
				"db-0.db.shop.svc.cluster.local. 30 IN AAAA fd00::1",
				"db-1.db.shop.svc.cluster.local. 30 IN A 10.1.0.2",
				"10-1-0-3.db.shop.svc.cluster.local. 30 IN A 10.1.0.3",
			}},
		{name: "empty.shop.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "empty.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},

		// ExternalName Services
		{name: "payments.shop.svc.cluster.local.", qtype: dns.TypeCNAME, answer: []string{"payments.shop.svc.cluster.local. 30 IN CNAME api.payments.example.com."}},
		{name: "payments.shop.svc.cluster.local.", qtype: dns.TypeANY, answer: []string{"payments.shop.svc.cluster.local. 30 IN CNAME api.payments.example.com."}},
		{name: "payments.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure}, // no upstream configured
		{name: "alias.shop.svc.cluster.local.", qtype: dns.TypeA, answer: []string{
			"alias.shop.svc.cluster.local. 30 IN CNAME web.shop.svc.cluster.local.",
			"web.shop.svc.cluster.local. 30 IN A 10.96.0.10",
		}},
		{name: "alias.shop.svc.cluster.local.", qtype: dns.TypeMX, answer: []string{
			"alias.shop.svc.cluster.local. 30 IN CNAME web.shop.svc.cluster.local.",
		}, soa: true},
		{name: "_http._tcp.payments.shop.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},

		// The zone itself, namespaces, and missing names
		{name: "svc.cluster.local.", qtype: dns.TypeNS, answer: []string{"svc.cluster.local. 30 IN NS ns.dns.cluster.local."}},
		{name: "svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "shop.svc.cluster.local.", qtype: dns.TypeA, soa: true},
		{name: "shop.svc.cluster.local.", qtype: dns.TypeSRV, soa: true},
		{name: "nowhere.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "missing.shop.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "missing.shop.svc.cluster.local.", qtype: dns.TypeA, network: "tcp", rcode: dns.RcodeNameError, soa: true},

		// Not ours: refused, not resolved
		{name: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "web.shop.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "xsvc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: ".", qtype: dns.TypeNS, rcode: dns.RcodeRefused},
		{name: "svc.cluster.local.", qtype: dns.TypeAXFR, network: "tcp", rcode: dns.RcodeRefused},
	}
	for _, tc := range cases {
		network := tc.network
		if network == "" {
			network = "udp"
		}
		t.Run(fmt.Sprintf("%s_%s_%s", tc.name, dns.TypeToString[tc.qtype], network), func(t *testing.T) {
			r := exchange(t, network, srv.Addr(), tc.name, tc.qtype)
			checkReply(t, r, tc)
		})
	}
}

func checkReply(t *testing.T, r *dns.Msg, tc dnsCase) {
	t.Helper()
	if r.Rcode != tc.rcode {
		t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
	}
	if got, want := rrStrings(r.Answer), parseRRs(t, tc.answer); !slices.Equal(got, want) {
		t.Errorf("answer:\n got %q\nwant %q", got, want)
	}
	if got, want := rrStrings(r.Extra), parseRRs(t, tc.extra); !slices.Equal(got, want) {
		t.Errorf("additional:\n got %q\nwant %q", got, want)
	}
	switch {
	case tc.soa:
		if len(r.Ns) != 1 {
			t.Fatalf("authority = %v, want the zone's SOA", r.Ns)
		}
		soa, ok := r.Ns[0].(*dns.SOA)
		if !ok || soa.Hdr.Name != "svc.cluster.local." || soa.Ns != "ns.dns.cluster.local." || soa.Minttl != 30 || soa.Hdr.Ttl != 30 {
			t.Errorf("authority = %v, want the SOA of svc.cluster.local.", r.Ns[0])
		}
	case len(r.Ns) != 0:
		t.Errorf("authority = %v, want none", r.Ns)
	}
	inZone := tc.rcode != dns.RcodeRefused && tc.rcode != dns.RcodeServerFailure
	if r.Authoritative != inZone {
		t.Errorf("AA = %v, want %v", r.Authoritative, inZone)
	}
}

// TestLookupIsPure checks the lookup directly, without a server: the same
// snapshot answers the same way, and an update publishes a new snapshot while
// the old one stays as it was.
func TestLookupIsPure(t *testing.T) {
	idx := fixtureIndex()
	z := newZone("cluster.local", 30)
	before := idx.snapshot()
	if r := z.Lookup(before, "web.shop.svc.cluster.local.", dns.TypeA); r.Kind != Success || len(r.Answer) != 1 {
		t.Fatalf("Lookup = %v %v, want one A record", r.Kind, r.Answer)
	}
	idx.DeleteService("shop", "web")
	if r := z.Lookup(before, "web.shop.svc.cluster.local.", dns.TypeA); r.Kind != Success {
		t.Errorf("old snapshot changed: %v", r.Kind)
	}
	if r := z.Lookup(idx.snapshot(), "web.shop.svc.cluster.local.", dns.TypeA); r.Kind != NameError {
		t.Errorf("after delete: %v, want NameError", r.Kind)
	}
	r := z.Lookup(idx.snapshot(), "payments.shop.svc.cluster.local.", dns.TypeA)
	if r.Kind != Delegation || r.Target != "api.payments.example.com." || len(r.Answer) != 1 {
		t.Errorf("ExternalName: %v target %q answer %v, want a Delegation to api.payments.example.com.", r.Kind, r.Target, r.Answer)
	}
}

// TestIndexUpdates follows one Service through the changes the operator makes:
// endpoints becoming ready and not, moving between slices, the TTL changing,
// the Service changing type, and deletion.
func TestIndexUpdates(t *testing.T) {
	idx := NewIndex()
	idx.MarkSynced()
	z := newZone("cluster.local", 30)
	lookup := func(name string, qtype uint16) []string {
		r := z.Lookup(idx.snapshot(), name, qtype)
		return append([]string{r.Kind.String()}, rrStrings(r.Answer)...)
	}
	want := func(name string, qtype uint16, kind ResultKind, records ...string) {
		t.Helper()
		got := lookup(name, qtype)
		exp := append([]string{kind.String()}, parseRRs(t, records)...)
		if !slices.Equal(got, exp) {
			t.Errorf("%s %s:\n got %q\nwant %q", name, dns.TypeToString[qtype], got, exp)
		}
	}
	const name = "api.team.svc.cluster.local."
	p := []discoveryv1.EndpointPort{endpointPort("http", corev1.ProtocolTCP, 8080)}

	// A slice that arrives before its Service is kept for it.
	idx.UpsertEndpointSlice(endpointSlice("team", "api-1", "api", discoveryv1.AddressTypeIPv4, p, endpoint("10.2.0.1", "")))
	want(name, dns.TypeA, NameError)
	idx.UpsertService(headlessService("team", "api"))
	want(name, dns.TypeA, Success, name+" 30 IN A 10.2.0.1")

	idx.UpsertEndpointSlice(endpointSlice("team", "api-1", "api", discoveryv1.AddressTypeIPv4, p, notReady(endpoint("10.2.0.1", "")), endpoint("10.2.0.2", "")))
	want(name, dns.TypeA, Success, name+" 30 IN A 10.2.0.2")

	// The same endpoint in two slices while it moves is answered once.
	idx.UpsertEndpointSlice(endpointSlice("team", "api-2", "api", discoveryv1.AddressTypeIPv4, p, endpoint("10.2.0.2", ""), endpoint("10.2.0.3", "")))
	want(name, dns.TypeA, Success, name+" 30 IN A 10.2.0.2", name+" 30 IN A 10.2.0.3")
	idx.DeleteEndpointSlice("team", "api-1")
	want(name, dns.TypeA, Success, name+" 30 IN A 10.2.0.2", name+" 30 IN A 10.2.0.3")

	// A slice relabelled to another Service leaves this one.
	idx.UpsertEndpointSlice(endpointSlice("team", "api-2", "other", discoveryv1.AddressTypeIPv4, p, endpoint("10.2.0.2", "")))
	want(name, dns.TypeA, NameError)
	idx.UpsertEndpointSlice(endpointSlice("team", "api-2", "api", discoveryv1.AddressTypeIPv4, p, endpoint("10.2.0.2", "")))

	idx.UpsertService(withTTL(headlessService("team", "api"), "7"))
	want(name, dns.TypeA, Success, name+" 7 IN A 10.2.0.2")
	idx.UpsertService(withTTL(headlessService("team", "api"), "not-a-number"))
	want(name, dns.TypeA, Success, name+" 30 IN A 10.2.0.2")

	idx.UpsertService(externalNameService("team", "api", "web.shop.svc.cluster.local."))
	want(name, dns.TypeCNAME, Success, name+" 30 IN CNAME web.shop.svc.cluster.local.")

	idx.DeleteService("team", "api")
	want(name, dns.TypeA, NameError)
	want("team.svc.cluster.local.", dns.TypeA, NameError)
}
