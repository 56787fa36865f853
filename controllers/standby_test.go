package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// TestStandbyProbes runs a second manager that never leads (another holds
// its Lease) beside the suite's, and checks that its prober has the
// intent's targets from its caches alone and judges them: a backend that
// stops is unhealthy to the standby, which a new leader would publish at
// once.
func TestStandbyProbes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := testEnv.Namespace(t)
	const leaseName = "standby-test"
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: leaseName},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("the-leader"),
			LeaseDurationSeconds: ptr.To[int32](3600),
			AcquireTime:          &metav1.MicroTime{Time: time.Now()},
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	if err := k8sClient.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}
	mo := testenv.ManagerOptions(testScheme)
	mo.Cache = CacheOptions()
	mo.LeaderElection, mo.LeaderElectionID, mo.LeaderElectionNamespace = true, leaseName, ns
	// The suite's manager has controllers of the same names.
	mo.Controller = ctrlconfig.Controller{SkipNameValidation: ptr.To(true), EnableWarmup: ptr.To(true)}
	standby, err := ctrl.NewManager(testEnv.Config, mo)
	if err != nil {
		t.Fatal(err)
	}
	prober := health.NewProber(health.Options{})
	if err := standby.Add(prober); err != nil {
		t.Fatal(err)
	}
	if err := SetupWithManager(standby, Options{Prober: prober}); err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, standby)

	tn := testnet.New(t, 2)
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		makePod(t, ns, "standby", fmt.Sprintf("backend-%d", i), h.IP.String(), 0, true)
	}
	in := testenv.Intent(ns, "standby").SelectApp("standby").HTTPPort(testnet.HTTPPort).
		HTTPProbe(250*time.Millisecond, 200*time.Millisecond, 2).Build()
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: ns, Name: "standby"}
	judged := func(want map[*testnet.Host]bool) func() error {
		return func() error {
			st := prober.Status(key)
			for h, healthy := range want {
				s, ok := st[h.IP.String()]
				switch {
				case !ok:
					return fmt.Errorf("the standby does not probe %s (it probes %v)", h.IP, st)
				case s.LastProbe.IsZero():
					return fmt.Errorf("the standby has not probed %s yet", h.IP)
				case s.Healthy != healthy:
					return fmt.Errorf("%s healthy=%v to the standby, want %v", h.IP, s.Healthy, healthy)
				}
			}
			return nil
		}
	}
	testenv.Eventually(t, 20*time.Second, judged(map[*testnet.Host]bool{tn.Hosts[0]: true, tn.Hosts[1]: true}))
	if err := tn.Hosts[0].Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, judged(map[*testnet.Host]bool{tn.Hosts[0]: false, tn.Hosts[1]: true}))
	// A pod that goes takes its target with it, on the standby too.
	if err := k8sClient.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(ns), client.MatchingLabels{"app": "standby"}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := prober.Status(key); len(st) != 0 {
			return fmt.Errorf("the standby still probes %v", st)
		}
		return nil
	})
	// An ExternalName intent's targets are probed on the standby too, and
	// go with the intent.
	ext := failoverIntent(ns, "primary.standby.test", "secondary.standby.test", v1alpha1.FailbackAutomatic, nil)
	if err := k8sClient.Create(ctx, ext); err != nil {
		t.Fatal(err)
	}
	extKey := client.ObjectKeyFromObject(ext)
	testenv.Eventually(t, 10*time.Second, func() error {
		st := prober.Status(extKey)
		for _, host := range []string{"primary.standby.test", "secondary.standby.test"} {
			if _, ok := st[host]; !ok {
				return fmt.Errorf("the standby does not probe %s (it probes %v)", host, st)
			}
		}
		return nil
	})
	if err := k8sClient.Delete(ctx, ext); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := prober.Status(extKey); len(st) != 0 {
			return fmt.Errorf("the standby still probes %v", st)
		}
		return nil
	})

	// The standby never led.
	if got := &(coordinationv1.Lease{}); k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: leaseName}, got) == nil && ptr.Deref(got.Spec.HolderIdentity, "") != "the-leader" {
		t.Errorf("the standby took the Lease: holder %q", ptr.Deref(got.Spec.HolderIdentity, ""))
	}
}
