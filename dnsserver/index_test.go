package dnsserver

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
			case want && (rec.ports[0].port != uint16(port) || rec.clusterIPs[0].String() != fmt.Sprintf("10.96.0.%d", i+1)):
				t.Fatalf("svc-%d has port %d and IP %s, want %d and 10.96.0.%d", i, rec.ports[0].port, rec.clusterIPs[0], port, i+1)
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
			if rec := before.service("many", "svc-0"); rec == nil || rec.ports[0].port != 80 {
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
