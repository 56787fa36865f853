package dnsserver

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// TestSourceFromAPIServer feeds the index through the Source from a real
// kube-apiserver and etcd, and watches DNS answers follow the objects.
//
// The control plane is started here rather than in TestMain: only this test
// needs it, and the fuzz target and benchmarks of this package must run
// without it.
func TestSourceFromAPIServer(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{})
	cfg := cp.Config
	// Cleanups run last first: everything below stops before the API server.
	ctx, cancel := context.WithCancel(context.Background())

	k8s := cp.Client
	informers, err := cache.New(cfg, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- informers.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-cacheDone; err != nil {
			t.Errorf("cache: %v", err)
		}
	})

	// An object that exists before the Source starts is in the first snapshot.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if err := k8s.Create(ctx, web); err != nil {
		t.Fatal(err)
	}
	if web.Spec.ClusterIP == "" {
		t.Fatal("the API server allocated no cluster IP")
	}

	idx := NewIndex()
	src := NewSource(informers, idx)
	if src.NeedLeaderElection() {
		t.Error("the Source must run on every replica")
	}
	sourceDone := make(chan error, 1)
	go func() { sourceDone <- src.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-sourceDone; err != nil {
			t.Errorf("Source.Start: %v", err)
		}
	})
	srv := startServer(t, Config{}, idx)

	testenv.Await(t, "index synced", 30*time.Second, func() error { return src.ReadyCheck(nil) })
	expect := func(what, name string, qtype uint16, rcode int, want ...string) {
		t.Helper()
		want = parseRRs(t, want)
		testenv.Await(t, what, 30*time.Second, func() error {
			r, err := tryExchange("udp", srv.Addr(), name, qtype)
			if err != nil {
				return err
			}
			if got := rrStrings(r.Answer); r.Rcode != rcode || !slices.Equal(got, want) {
				return fmt.Errorf("%s %q, want %s %q", dns.RcodeToString[r.Rcode], got, dns.RcodeToString[rcode], want)
			}
			return nil
		})
	}
	const webName = "web.shop.svc.cluster.local."
	expect("Service from before the start", webName, dns.TypeA, dns.RcodeSuccess, webName+" 30 IN A "+web.Spec.ClusterIP)

	// A headless Service and the EndpointSlice the operator writes for it.
	db := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Ports:     []corev1.ServicePort{{Name: "postgres", Port: 5432}},
		},
	}
	if err := k8s.Create(ctx, db); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop",
			Name:      "db-ipv4",
			Labels:    map[string]string{discoveryv1.LabelServiceName: "db"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("postgres"), Port: ptr.To[int32](5432), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.1"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.1.0.2"}, Hostname: ptr.To("db-1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}
	if err := k8s.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	const dbName = "db.shop.svc.cluster.local."
	expect("headless Service with one ready endpoint", dbName, dns.TypeA, dns.RcodeSuccess, dbName+" 30 IN A 10.1.0.1")
	expect("SRV of the ready endpoint", "_postgres._tcp."+dbName, dns.TypeSRV, dns.RcodeSuccess,
		"_postgres._tcp."+dbName+" 30 IN SRV 0 100 5432 db-0."+dbName)

	// The health checker flips the endpoints: db-0 fails, db-1 recovers.
	slice.Endpoints[0].Conditions.Ready = ptr.To(false)
	slice.Endpoints[1].Conditions.Ready = ptr.To(true)
	if err := k8s.Update(ctx, slice); err != nil {
		t.Fatal(err)
	}
	expect("endpoint readiness flipped", dbName, dns.TypeA, dns.RcodeSuccess, dbName+" 30 IN A 10.1.0.2")
	expect("failed endpoint's name gone", "db-0."+dbName, dns.TypeA, dns.RcodeNameError)

	// The intent's dns.ttl reaches the Service as the annotation.
	web.Annotations = map[string]string{v1alpha1.AnnotationDNSTTL: "7"}
	if err := k8s.Update(ctx, web); err != nil {
		t.Fatal(err)
	}
	expect("TTL annotation", webName, dns.TypeA, dns.RcodeSuccess, webName+" 7 IN A "+web.Spec.ClusterIP)

	if err := k8s.Delete(ctx, db); err != nil {
		t.Fatal(err)
	}
	expect("deleted Service", dbName, dns.TypeA, dns.RcodeNameError)
}

func TestDeletedKey(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	cases := []struct {
		desc string
		obj  any
		ok   bool
	}{
		{"object", svc, true},
		{"tombstone with the object", toolscache.DeletedFinalStateUnknown{Key: "shop/web", Obj: svc}, true},
		{"tombstone with only the key", toolscache.DeletedFinalStateUnknown{Key: "shop/web"}, true},
		{"something else", "shop/web", false},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			ns, name, ok := deletedKey(tc.obj)
			if ok != tc.ok || (ok && (ns != "shop" || name != "web")) {
				t.Errorf("deletedKey = %q %q %v, want shop web %v", ns, name, ok, tc.ok)
			}
		})
	}
}
