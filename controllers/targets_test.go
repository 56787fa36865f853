package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/netintent/netintent/dnsserver"
	"github.com/netintent/netintent/internal/testenv"
)

// testHosts is the DNS zone the suite's prober resolves target names in: a
// server on loopback, so that no name a test uses is looked up anywhere else.
var testHosts = &testenv.Upstream{}

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
