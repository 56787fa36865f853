package controllers

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/dnsserver"
	"github.com/netintent/netintent/internal/testnet"
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

func TestExternalNameFailsOver(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 2)
	primary, standby := tn.Hosts[0], tn.Hosts[1]
	for _, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ns := newNamespace(t)
	testHosts.set("api."+ns+".failover.test", primary.IP)
	testHosts.set("api-dr."+ns+".failover.test", standby.IP)
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureExternalName,
			HealthCheck: &v1alpha1.HealthCheck{
				Period:             &metav1.Duration{Duration: probePeriod},
				Timeout:            &metav1.Duration{Duration: probeTimeout},
				UnhealthyThreshold: ptr.To[int32](unhealthyThreshold),
			},
			ExternalName: &v1alpha1.ExternalNameSpec{Targets: []v1alpha1.ExternalTarget{
				{Host: "api." + ns + ".failover.test", ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](testnet.TCPPort)}}},
				{Host: "api-dr." + ns + ".failover.test", ProbeHandler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz", Port: ptr.To[int32](testnet.HTTPPort)}}},
			}},
		},
	}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	published := func(host string, healthy ...bool) func() error {
		return func() error {
			svc, err := getService(ctx, ns, "payments")
			if err != nil {
				return err
			}
			if svc.Spec.ExternalName != host {
				return fmt.Errorf("externalName %q, want %q", svc.Spec.ExternalName, host)
			}
			got, err := getIntent(ctx, ns, "payments")
			if err != nil {
				return err
			}
			st := got.Status.ExternalName
			if st == nil || st.ActiveTarget != host || len(st.Targets) != len(healthy) {
				return fmt.Errorf("status %+v", st)
			}
			for i, h := range healthy {
				if st.Targets[i].Healthy != h {
					return fmt.Errorf("target %s healthy %v, want %v (%s)", st.Targets[i].Host, st.Targets[i].Healthy, h, st.Targets[i].Message)
				}
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, published("api."+ns+".failover.test", true, true))

	// The primary fails its probes: the alias moves to the standby, and
	// the intent says why.
	if err := primary.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*notReadyDeadline, published("api-dr."+ns+".failover.test", false, true))
	got, err := getIntent(ctx, ns, "payments")
	if err != nil {
		t.Fatal(err)
	}
	if err := conditionStatus(got, ConditionEndpointsHealthy, metav1.ConditionFalse, ReasonDegraded); err != nil {
		t.Fatal(err)
	}
	if err := conditionStatus(got, ConditionReady, metav1.ConditionTrue, ReasonReady); err != nil {
		t.Fatal(err)
	}

	// It comes back: the alias returns to it.
	if err := primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*notReadyDeadline, published("api."+ns+".failover.test", true, true))
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
