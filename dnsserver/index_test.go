package dnsserver

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIndexShardsANamespace fills one namespace with more Services than it
// has shards, in both orders of sync and update, changes and deletes them,
// and checks after every step that each name resolves to its own record and
// that the namespace exists exactly while it has a Service.
func TestIndexShardsANamespace(t *testing.T) {
	const n = 3 * namespaceShards
	svc := func(i, port int) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "many", Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.96.0.%d", i+1),
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: int32(port)}},
			},
		}
	}
	check := func(t *testing.T, idx *Index, present map[int]int) {
		t.Helper()
		s := idx.snapshot()
		for i := range n {
			rec := s.service("many", fmt.Sprintf("svc-%d", i))
			port, want := present[i]
			switch {
			case want && rec == nil:
				t.Fatalf("svc-%d is missing", i)
			case !want && rec != nil:
				t.Fatalf("svc-%d is there after its delete", i)
			case want && (rec.ports.all()[0].port != uint16(port) || rec.clusterIPs[0].String() != fmt.Sprintf("10.96.0.%d", i+1)):
				t.Fatalf("svc-%d has port %d and IP %s, want %d and 10.96.0.%d", i, rec.ports.all()[0].port, rec.clusterIPs[0], port, i+1)
			}
		}
		if got := s.hasNamespace("many"); got != (len(present) > 0) {
			t.Fatalf("namespace exists: %v with %d Services", got, len(present))
		}
		if ns := s.namespaces["many"]; ns != nil && ns.services != len(present) {
			t.Fatalf("the namespace counts %d Services, holds %d", ns.services, len(present))
		}
	}
	for _, syncFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("synced before the adds: %v", syncFirst), func(t *testing.T) {
			idx := NewIndex()
			if syncFirst {
				idx.MarkSynced()
			}
			present := map[int]int{}
			for i := range n {
				idx.UpsertService(svc(i, 80))
				present[i] = 80
			}
			idx.MarkSynced()
			check(t, idx, present)
			before := idx.snapshot()
			for i := 0; i < n; i += 3 {
				idx.UpsertService(svc(i, 81))
				present[i] = 81
			}
			check(t, idx, present)
			// An older snapshot is never changed by a later update.
			if rec := before.service("many", "svc-0"); rec == nil || rec.ports.all()[0].port != 80 {
				t.Fatalf("an earlier snapshot changed: svc-0 is %+v", rec)
			}
			for i := range n {
				idx.DeleteService("many", fmt.Sprintf("svc-%d", i))
				delete(present, i)
				if i%namespaceShards == 0 || i == n-1 {
					check(t, idx, present)
				}
			}
		})
	}
}

// TestIndexMemoryPerService fills an index with Services of one slice of
// two endpoints each, as an intent's, and bounds the heap it holds for
// each: the index keeps a compact form, not the objects it was fed, and
// a Service's record shares its state and its one slice's endpoints.
// Before that, the same Services took 1,204 bytes each, then 797; with one
// map by Service name and the lists of ports shared (sharePorts), 586
// (go1.26, linux/amd64).
func TestIndexMemoryPerService(t *testing.T) {
	const n = 5000
	const maxPerService = 680 // bytes
	build := func() *Index {
		idx := NewIndex()
		for i := range n {
			name := fmt.Sprintf("app-%d", i)
			idx.UpsertService(clusterIPService("bench", name, []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)}, servicePort("http", corev1.ProtocolTCP, 80)))
			idx.UpsertEndpointSlice(endpointSlice("bench", name+"-v4-0", name, discoveryv1.AddressTypeIPv4,
				[]discoveryv1.EndpointPort{endpointPort("http", corev1.ProtocolTCP, 8080)},
				endpoint(fmt.Sprintf("10.250.%d.%d", i/250, i%250+1), ""), endpoint(fmt.Sprintf("10.249.%d.%d", i/250, i%250+1), "")))
		}
		idx.MarkSynced()
		return idx
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	idx := build()
	after := heap()
	per := (float64(after) - float64(before)) / n
	t.Logf("index: %.0f bytes a Service with one slice of two endpoints", per)
	if rec := idx.snapshot().service("bench", "app-1"); rec == nil || len(rec.endpoints) != 2 {
		t.Fatalf("app-1: %+v", rec)
	}
	if per > maxPerService {
		t.Errorf("the index holds %.0f bytes a Service, want at most %d", per, maxPerService)
	}
	runtime.KeepAlive(idx)
}

// TestIndexJoinsSlices: a Service answers the ready endpoints of all its
// slices, each once and in address order, whatever order the slices and
// their endpoints came in, and follows a slice that moves to another
// Service or goes.
func TestIndexJoinsSlices(t *testing.T) {
	idx := NewIndex()
	idx.MarkSynced()
	ports := []discoveryv1.EndpointPort{endpointPort("http", corev1.ProtocolTCP, 8080)}
	idx.UpsertService(clusterIPService("ns", "web", []string{"10.96.0.1"}))
	idx.UpsertService(clusterIPService("ns", "api", []string{"10.96.0.2"}))
	addrs := func(name string) []string {
		t.Helper()
		rec := idx.snapshot().service("ns", name)
		if rec == nil {
			t.Fatalf("%s is missing", name)
		}
		var out []string
		for _, ep := range rec.endpoints {
			out = append(out, ep.addr.String()+"/"+ep.host)
		}
		return out
	}
	want := func(name string, expected ...string) {
		t.Helper()
		if got := addrs(name); !slices.Equal(got, expected) {
			t.Fatalf("%s answers %v, want %v", name, got, expected)
		}
	}
	idx.UpsertEndpointSlice(endpointSlice("ns", "web-a", "web", discoveryv1.AddressTypeIPv4, ports,
		endpoint("10.1.0.3", ""), endpoint("10.1.0.1", ""), notReady(endpoint("10.1.0.2", ""))))
	want("web", "10.1.0.1/10-1-0-1", "10.1.0.3/10-1-0-3")
	// A second slice overlapping the first, as while endpoints move.
	idx.UpsertEndpointSlice(endpointSlice("ns", "web-b", "web", discoveryv1.AddressTypeIPv4, ports,
		endpoint("10.1.0.3", ""), endpoint("10.1.0.0", "zero")))
	want("web", "10.1.0.0/zero", "10.1.0.1/10-1-0-1", "10.1.0.3/10-1-0-3")
	// web-a moves to api.
	idx.UpsertEndpointSlice(endpointSlice("ns", "web-a", "api", discoveryv1.AddressTypeIPv4, ports, endpoint("10.1.0.1", "")))
	want("web", "10.1.0.0/zero", "10.1.0.3/10-1-0-3")
	want("api", "10.1.0.1/10-1-0-1")
	idx.DeleteEndpointSlice("ns", "web-b")
	want("web")
	// A Service deleted and made again finds its slices.
	idx.DeleteService("ns", "api")
	idx.UpsertService(clusterIPService("ns", "api", []string{"10.96.0.2"}))
	want("api", "10.1.0.1/10-1-0-1")
}

// TestPortListsShared checks that equal lists of ports are one copy, and
// that a list goes from the table once nothing holds it.
func TestPortListsShared(t *testing.T) {
	specs := func(port uint16) []portSpec { return []portSpec{{name: "shared-test", proto: "tcp", port: port}} }
	a, b, c := sharePorts(specs(80)), sharePorts(specs(80)), sharePorts(specs(81))
	if a.p != b.p || a.p == c.p || len(a.all()) != 1 || a.all()[0].port != 80 {
		t.Fatalf("lists of ports not shared as they should be: %p %p %p", a.p, b.p, c.p)
	}
	if sharePorts(nil).all() != nil {
		t.Error("no ports made a list")
	}
	key := portsKey(specs(80))
	a, b = portList{}, portList{}
	_, _ = a, b
	held := func(key string) bool {
		portLists.Lock()
		defer portLists.Unlock()
		_, ok := portLists.m[key]
		return ok
	}
	for deadline := time.Now().Add(10 * time.Second); held(key); {
		if time.Now().After(deadline) {
			t.Fatal("a list of ports nothing holds is still in the table")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if !held(portsKey(specs(81))) {
		t.Error("a list still held left the table")
	}
	runtime.KeepAlive(c)
}
