package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// This file holds what the tests share: a server on 127.0.0.1:0, a client, a
// fake upstream resolver, a fake clock, and builders for Kubernetes objects.

const testTimeout = 10 * time.Second

// startServer runs a Server on a free loopback port until the test ends.
// prepare, if given, runs after New and before Start, to inject test doubles.
func startServer(t testing.TB, cfg Config, idx *Index, prepare ...func(*Server)) *Server {
	t.Helper()
	cfg.ListenAddress = "127.0.0.1:0"
	srv, err := New(cfg, idx)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, p := range prepare {
		p(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	select {
	case <-srv.Listening():
	case err := <-done:
		cancel()
		t.Fatalf("Start: %v", err)
	case <-time.After(testTimeout):
		cancel()
		t.Fatal("server did not start listening")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start returned %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("server did not stop")
		}
	})
	return srv
}

// exchange sends one question to addr over network with a real miekg client.
func exchange(t testing.TB, network, addr, name string, qtype uint16, edit ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	r, err := tryExchange(network, addr, name, qtype, edit...)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

func tryExchange(network, addr, name string, qtype uint16, edit ...func(*dns.Msg)) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	for _, e := range edit {
		e(q)
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(q, addr)
	return r, err
}

// rrStrings renders records in presentation format, sorted, for comparison.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// parseRRs parses records written in zone-file format into the same form.
func parseRRs(t testing.TB, lines []string) []string {
	t.Helper()
	rrs := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("bad expected record %q: %v", l, err)
		}
		rrs = append(rrs, rr)
	}
	return rrStrings(rrs)
}

// fakeUpstream is a resolver on loopback (UDP and TCP on one port) that
// answers from a function and counts the queries it receives.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
	stop    func()
}

func startUpstream(t testing.TB, answer func(w dns.ResponseWriter, r *dns.Msg)) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	var err error
	u.addr, u.stop, err = testenv.ServeDNS(dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		answer(w, r)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.stop)
	return u
}

// zoneAnswer answers from a static zone: records by owner name, NXDOMAIN for
// names listed as missing, NODATA otherwise. It does not recurse: a CNAME is
// returned alone, as an authoritative server would.
func zoneAnswer(records map[string][]string) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		lines, ok := records[strings.ToLower(q.Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, l := range lines {
			rr, err := dns.NewRR(l)
			if err != nil {
				panic(err)
			}
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) == 0 {
			soa, _ := dns.NewRR("example.com. 300 IN SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 60")
			m.Ns = []dns.RR{soa}
		}
		_ = w.WriteMsg(m)
	}
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recordingWriter is a dns.ResponseWriter without a socket: it keeps the
// bytes of the last reply.
type recordingWriter struct {
	tcp    bool
	packed []byte
}

// reply unpacks the last reply.
func (w *recordingWriter) reply() (*dns.Msg, error) {
	if w.packed == nil {
		return nil, errors.New("no reply written")
	}
	m := new(dns.Msg)
	if err := m.Unpack(w.packed); err != nil {
		return nil, fmt.Errorf("reply does not unpack: %w", err)
	}
	return m, nil
}

var (
	testClientUDP = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	testClientTCP = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
)

func (w *recordingWriter) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *recordingWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return testClientTCP
	}
	return testClientUDP
}

func (w *recordingWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.packed = b
	return nil
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.packed = append(w.packed[:0], b...)
	return len(b), nil
}

func (w *recordingWriter) Close() error        { return nil }
func (w *recordingWriter) TsigStatus() error   { return nil }
func (w *recordingWriter) TsigTimersOnly(bool) {}
func (w *recordingWriter) Hijack()             {}

// Builders for the Kubernetes objects the index is fed with.

func clusterIPService(namespace, name string, ips []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  ips[0],
			ClusterIPs: ips,
			Ports:      ports,
		},
	}
}

func headlessService(namespace, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  corev1.ClusterIPNone,
			ClusterIPs: []string{corev1.ClusterIPNone},
			Ports:      ports,
		},
	}
}

func externalNameService(namespace, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

func servicePort(name string, proto corev1.Protocol, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: port}
}

func endpointSlice(namespace, name, service string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, endpoints ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      name,
			Labels:    map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: family,
		Ports:       ports,
		Endpoints:   endpoints,
	}
}

func endpointPort(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(proto), Port: ptr.To(port)}
}

// endpoint is a ready endpoint; hostname may be empty.
func endpoint(addr, hostname string) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
	if hostname != "" {
		ep.Hostname = ptr.To(hostname)
	}
	return ep
}

func notReady(ep discoveryv1.Endpoint) discoveryv1.Endpoint {
	ep.Conditions.Ready = ptr.To(false)
	return ep
}

func unknownReadiness(ep discoveryv1.Endpoint) discoveryv1.Endpoint {
	ep.Conditions.Ready = nil
	return ep
}

func withTTL(svc *corev1.Service, ttl string) *corev1.Service {
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[v1alpha1.AnnotationDNSTTL] = ttl
	return svc
}
