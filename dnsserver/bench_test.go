package dnsserver

import (
	"fmt"
	"net"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/miekg/dns"
)

// benchmarkQuestion answers one question through the handler, reply packing
// included, as the server would for each UDP packet (socket I/O excluded).
func benchmarkQuestion(b *testing.B, name string, qtype uint16, wantAnswers int) {
	h := offlineHandler(logr.Discard())
	req := new(dns.Msg).SetQuestion(name, qtype)
	w := &recordingWriter{}
	h.ServeDNS(w, req) // warms the upstream cache where there is one
	if reply, err := w.reply(); err != nil || reply.Rcode != dns.RcodeSuccess || len(reply.Answer) != wantAnswers {
		b.Fatalf("warm-up reply: %v %v", reply, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
	if reply, err := w.reply(); err != nil || len(reply.Answer) != wantAnswers {
		b.Fatalf("reply: %v %v", reply, err)
	}
}

// BenchmarkCachedA is an A question answered from the index.
func BenchmarkCachedA(b *testing.B) {
	benchmarkQuestion(b, "web.shop.svc.cluster.local.", dns.TypeA, 1)
}

// BenchmarkCachedExternalName is an ExternalName question whose target's
// upstream answer is in the cache: the CNAME and the cached A record.
func BenchmarkCachedExternalName(b *testing.B) {
	benchmarkQuestion(b, "payments.shop.svc.cluster.local.", dns.TypeA, 2)
}

// BenchmarkUDPRoundTrip is one question and its reply over a real loopback
// UDP socket, one at a time: the server's read loop, packed replies and
// socket I/O included.
func BenchmarkUDPRoundTrip(b *testing.B) {
	idx := NewIndex()
	idx.UpsertService(clusterIPService("shop", "web", []string{"10.0.0.10"}))
	idx.MarkSynced()
	srv := startServer(b, Config{}, idx)
	conn, err := net.Dial("udp", srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	q, err := new(dns.Msg).SetQuestion("web.shop.svc.cluster.local.", dns.TypeA).SetEdns0(1232, false).Pack()
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1232)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.Write(q); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexUpsert updates one Service of a namespace that holds n
// Services, as the operator's informers do for each Service and slice
// event: what a change costs the index grows with the namespace it is in.
func BenchmarkIndexUpsert(b *testing.B) {
	for _, n := range []int{100, 5000} {
		b.Run(fmt.Sprintf("namespace-of-%d", n), func(b *testing.B) {
			idx := NewIndex()
			svcs := make([]*corev1.Service, n)
			for i := range svcs {
				svcs[i] = &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i)},
					Spec: corev1.ServiceSpec{
						Type: corev1.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1),
						Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
					},
				}
				idx.UpsertService(svcs[i])
			}
			idx.MarkSynced()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// A change each time: the port flips between 80 and 81.
				svc := svcs[i%n]
				svc.Spec.Ports[0].Port = 161 - svc.Spec.Ports[0].Port
				idx.UpsertService(svc)
				i++
			}
			if idx.snapshot().service("bench", "svc-0") == nil {
				b.Fatal("svc-0 is not in the index")
			}
		})
	}
}
