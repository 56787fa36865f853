package controllers

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"github.com/miekg/dns"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/netintent/netintent/dnsserver"
)

// testHosts is the DNS zone the suite's prober resolves target names in: a
// server on loopback, so that no name a test uses is looked up anywhere else.
var testHosts = &hostsZone{names: map[string]netip.Addr{}}

type hostsZone struct {
	mu    sync.Mutex
	names map[string]netip.Addr
	addr  string
}

func (z *hostsZone) set(name string, addr netip.Addr) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.names[dns.Fqdn(name)] = addr
}

func (z *hostsZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	z.mu.Lock()
	addr, ok := z.names[req.Question[0].Name]
	z.mu.Unlock()
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case req.Question[0].Qtype == dns.TypeA && addr.Is4():
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: addr.AsSlice()})
	}
	_ = w.WriteMsg(m)
}

// start serves the zone on 127.0.0.1 and returns a resolver that asks it.
func (z *hostsZone) start() (*net.Resolver, func(), error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: z}
	go func() { _ = srv.ActivateAndServe() }()
	z.addr = pc.LocalAddr().String()
	return z.resolver(), func() { _ = srv.Shutdown() }, nil
}

// resolver asks the zone's server, once start has run.
func (z *hostsZone) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", z.addr)
	}}
}

// suiteDNS is the suite's embedded DNS server, on 127.0.0.1.
var suiteDNS *dnsserver.Server

// startSuiteDNS adds a DNS server for the cluster zone to mgr, on a free
// port of 127.0.0.1, forwarding out-of-zone names to upstream alone.
func startSuiteDNS(mgr ctrl.Manager, upstream string) (*dnsserver.Server, error) {
	idx := dnsserver.NewIndex()
	if err := mgr.Add(dnsserver.NewSource(mgr.GetCache(), idx)); err != nil {
		return nil, err
	}
	srv, err := dnsserver.New(dnsserver.Config{
		ListenAddress: "127.0.0.1:0",
		ClusterDomain: "cluster.local",
		Upstreams:     []string{upstream},
		TTL:           30,
	}, idx)
	if err != nil {
		return nil, err
	}
	return srv, mgr.Add(srv)
}
