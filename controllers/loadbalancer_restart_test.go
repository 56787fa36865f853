package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// TestAddressesSurviveRestarts restarts the operator (stops its manager and
// starts a new one) 5 times: every Service keeps its address, and the
// assignments stay the same for 10 s after each restart. While the operator
// is down a new Service appears, named to be reconciled first, so an
// operator that allocated before re-claiming would hand it an address in
// use; one round also deletes a Service and one edits the pool.
//
// The package's manager already serves the suite's control plane, so this
// test starts a control plane of its own and runs one manager at a time on
// it.
func TestAddressesSurviveRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the operator 5 times with a 10 s watch each")
	}
	cp := testenv.StartT(t, testenv.Options{})
	cfg, c := cp.Config, cp.Client
	ctx := context.Background()

	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restart"}}
	if err := c.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	pool := &v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "restart"},
		Spec:       v1alpha1.AddressPoolSpec{Addresses: []string{"203.0.113.64/28"}},
	}
	if err := c.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	plain := func(name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{
				Type:              corev1.ServiceTypeLoadBalancer,
				LoadBalancerClass: ptr.To(v1alpha1.AddressPoolClass),
				Ports:             []corev1.ServicePort{{Name: "http", Port: 80}},
			},
		}
	}
	var objs []client.Object
	for _, name := range []string{"svc-0", "svc-1", "svc-2", "svc-3"} {
		objs = append(objs, plain(name))
	}
	objs = append(objs, poolIntent(ns, "web-0", "", ""), poolIntent(ns, "web-1", "restart", ""))
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	// addresses reads every Service's address ("" if none) and fails on
	// two Services with one address.
	addresses := func() (map[string]string, error) {
		list := &corev1.ServiceList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		got := map[string]string{}
		holder := map[string]string{}
		for _, svc := range list.Items {
			got[svc.Name] = ""
			if len(svc.Status.LoadBalancer.Ingress) == 0 {
				continue
			}
			addr := svc.Status.LoadBalancer.Ingress[0].IP
			if other, ok := holder[addr]; ok {
				return nil, fmt.Errorf("services %s and %s both have %s", other, svc.Name, addr)
			}
			holder[addr] = svc.Name
			c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned)
			if c == nil || c.Status != metav1.ConditionTrue || c.Message != "address "+addr+" from pool restart" {
				return nil, fmt.Errorf("service %s has %s and condition %+v", svc.Name, addr, c)
			}
			got[svc.Name] = addr
		}
		return got, nil
	}
	// unchanged checks that every Service of want keeps its address, and
	// the intents show it.
	unchanged := func(want map[string]string) error {
		got, err := addresses()
		if err != nil {
			return err
		}
		for name, addr := range want {
			if got[name] != addr {
				return fmt.Errorf("service %s has %q, had %s", name, got[name], addr)
			}
		}
		for _, name := range []string{"web-0", "web-1"} {
			in := &v1alpha1.NetworkIntent{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, in); err != nil {
				return err
			}
			if in.Status.Address != want[name] {
				return fmt.Errorf("intent %s shows %q, its Service has %s", name, in.Status.Address, want[name])
			}
		}
		return nil
	}
	allAssigned := func(names ...string) (map[string]string, error) {
		got, err := addresses()
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if got[name] == "" {
				return nil, fmt.Errorf("service %s has no address yet (all: %v)", name, got)
			}
		}
		return got, nil
	}

	stop := startOperator(t, cfg)
	var want map[string]string
	testenv.Eventually(t, 30*time.Second, func() error {
		var err error
		want, err = allAssigned("svc-0", "svc-1", "svc-2", "svc-3", "web-0", "web-1")
		if err != nil {
			return err
		}
		return unchanged(want)
	})
	stop()

	for round := 1; round <= 5; round++ {
		newcomer := fmt.Sprintf("a-new-%d", round)
		if err := c.Create(ctx, plain(newcomer)); err != nil {
			t.Fatal(err)
		}
		switch round {
		case 2:
			// Deleted while the operator is down: its address is not
			// re-claimed, and may go to the newcomer.
			if err := c.Delete(ctx, plain("svc-3")); err != nil {
				t.Fatal(err)
			}
			delete(want, "svc-3")
		case 3:
			// A pool edit that still contains every address given.
			cur := &v1alpha1.AddressPool{}
			if err := c.Get(ctx, client.ObjectKey{Name: "restart"}, cur); err != nil {
				t.Fatal(err)
			}
			cur.Spec.Addresses = []string{"203.0.113.60-203.0.113.90"}
			if err := c.Update(ctx, cur); err != nil {
				t.Fatal(err)
			}
		}

		stop = startOperator(t, cfg)
		testenv.Consistently(t, 10*time.Second, func() error { return unchanged(want) })
		testenv.Eventually(t, 10*time.Second, func() error {
			got, err := allAssigned(newcomer)
			if err != nil {
				return err
			}
			for name, addr := range want {
				if got[newcomer] == addr {
					return fmt.Errorf("newcomer got %s, which %s holds", addr, name)
				}
			}
			want[newcomer] = got[newcomer]
			return nil
		})
		stop()
		t.Logf("restart %d: %d Services kept their addresses; %s got %s", round, len(want)-1, newcomer, want[newcomer])
	}
}

// startOperator starts a manager with every reconciler on the control plane
// of cfg, and returns a function that stops it and waits until it has.
func startOperator(t *testing.T, cfg *rest.Config) func() {
	t.Helper()
	return startOperatorWith(t, cfg, Options{})
}

// startOperatorWith is startOperator with the given options.
func startOperatorWith(t *testing.T, cfg *rest.Config, opts Options) func() {
	t.Helper()
	mo := testenv.ManagerOptions(testScheme)
	mo.Cache = CacheOptions()
	// The suite's manager registered the same controller names.
	mo.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Prober != nil {
		if err := mgr.Add(opts.Prober); err != nil {
			t.Fatal(err)
		}
	}
	if err := SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	return testenv.RunManager(t, mgr)
}
