package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// restartHealthyThreshold is the passes a failed backend needs to return in
// the restart tests: more than one, so a prober that forgot the failure
// could not pass for one that remembers it.
const restartHealthyThreshold = 2

// versionWatch sees every version of some objects from a resourceVersion on
// (a watch that resumes where it broke off, not a poll) and counts the
// versions a check calls bad.
type versionWatch struct {
	mu       sync.Mutex
	versions int
	bad      []string
	close    func()
}

func watchVersions(t *testing.T, rv string, watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error), check func(runtime.Object) string) *versionWatch {
	t.Helper()
	w := &versionWatch{}
	var err error
	w.close, err = testenv.Watch(context.Background(), rv, watchFunc, func(ev watch.Event, _ time.Time) {
		if ev.Type != watch.Added && ev.Type != watch.Modified {
			return
		}
		why := check(ev.Object)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.versions++
		if why != "" {
			w.bad = append(w.bad, why)
		}
	})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(w.close)
	return w
}

// counts stops the watch and returns how many versions it saw and which
// were bad.
func (w *versionWatch) counts() (int, []string) {
	w.close()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.versions, w.bad
}

// restartEnv is a control plane of its own on which the restart tests run
// one operator at a time (the package's manager serves the suite's).
func restartEnv(t *testing.T) (*rest.Config, client.Client, kubernetes.Interface) {
	t.Helper()
	cp := testenv.StartT(t, testenv.Options{})
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Config, cp.Client, cs
}

// freshOperator starts an operator with a prober that knows nothing yet, as
// after a restart or on becoming leader.
func freshOperator(t *testing.T, cfg *rest.Config) func() {
	t.Helper()
	return startOperatorWith(t, cfg, Options{Prober: health.NewProber(health.Options{Checker: &health.Checker{HostResolver: health.NetResolver(testHosts.Resolver())}})})
}

// TestHealthSurvivesRestart restarts the operator while a backend fails its
// probes, watching every version of what it publishes from the moment the
// failure is published: no version puts the failed backend (or the failed
// ExternalName target) back into traffic before it passes its probes again.
func TestHealthSurvivesRestart(t *testing.T) {
	testnet.SkipUnlessRoot(t) // before its control plane: the hosts need root
	cfg, c, cs := restartEnv(t)
	tn := testnet.New(t, 6)
	ctx := context.Background()
	for _, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("endpoints", func(t *testing.T) { testEndpointHealthSurvivesRestart(t, cfg, c, cs, tn.Hosts[:4]) })
	t.Run("externalName", func(t *testing.T) { testTargetHealthSurvivesRestart(t, cfg, c, cs, tn.Hosts[4:]) })
}

func testEndpointHealthSurvivesRestart(t *testing.T, cfg *rest.Config, c client.Client, cs kubernetes.Interface, hosts []*testnet.Host) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restart-endpoints"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	makeBackendPod := func(name string, h *testnet.Host, ready bool) {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name, Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIPs = []corev1.PodIP{{IP: h.IP.String()}}
		pod.Status.PodIP = h.IP.String()
		testenv.SetPodReady(pod, ready)
		if err := c.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	// dead fails its probe; sleepy fails it too, and its pod is not ready
	// either until the operator has restarted.
	dead, live, newcomer, sleepy := hosts[0], hosts[1], hosts[2], hosts[3]
	if err := sleepy.Stop(); err != nil {
		t.Fatal(err)
	}
	makeBackendPod("dead", dead, true)
	makeBackendPod("live", live, true)
	makeBackendPod("sleepy", sleepy, false)
	in := testenv.Intent(ns.Name, "web").SelectApp("web").HTTPPort(testnet.HTTPPort).
		HTTPProbe(probePeriod, probeTimeout, unhealthyThreshold).HealthyThreshold(restartHealthyThreshold).Build()
	if err := c.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	slices := func() (map[string]bool, string, error) { return testenv.PublishedReady(ctx, c, ns.Name, "web") }
	waitReady := func(timeout time.Duration, want map[*testnet.Host]bool) string {
		t.Helper()
		return testenv.WaitPublished(t, c, ns.Name, "web", timeout, testnet.ByIP(want))
	}

	stop := freshOperator(t, cfg)
	waitReady(20*time.Second, map[*testnet.Host]bool{dead: true, live: true, sleepy: false})
	if err := dead.Stop(); err != nil {
		t.Fatal(err)
	}
	rv := waitReady(notReadyDeadline, map[*testnet.Host]bool{dead: false, live: true, sleepy: false})

	// From the version that took it out of traffic on, no version may put
	// it back until it serves again.
	var mu sync.Mutex
	isDead := true
	w := watchVersions(t, rv, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = discoveryv1.LabelServiceName + "=web"
		return cs.DiscoveryV1().EndpointSlices(ns.Name).Watch(ctx, o)
	}, func(obj runtime.Object) string {
		s := obj.(*discoveryv1.EndpointSlice)
		mu.Lock()
		defer mu.Unlock()
		for _, ep := range s.Endpoints {
			failed := ep.Addresses[0] == dead.IP.String() || ep.Addresses[0] == sleepy.IP.String()
			if isDead && failed && ptr.Deref(ep.Conditions.Ready, false) {
				return fmt.Sprintf("slice %s version %s publishes the failed backend %s ready", s.Name, s.ResourceVersion, ep.Addresses[0])
			}
		}
		return ""
	})

	for round := range 2 {
		stop()
		stop = freshOperator(t, cfg)
		if round == 0 {
			// A new backend makes the new operator write the slice.
			makeBackendPod("newcomer", newcomer, true)
			waitReady(20*time.Second, map[*testnet.Host]bool{dead: false, live: true, newcomer: true, sleepy: false})
			// The new operator met sleepy published not ready with its
			// pod not ready; now its pod turns ready, but its probe has
			// not passed.
			testenv.Eventually(t, 10*time.Second, func() error {
				pod := &corev1.Pod{}
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "sleepy"}, pod); err != nil {
					return err
				}
				testenv.SetPodReady(pod, true)
				return c.Status().Update(ctx, pod)
			})
		}
		// Long enough for a forgetful prober to have failed the backend
		// again: the watch would have seen it published ready meanwhile.
		testenv.Consistently(t, probePeriod*unhealthyThreshold*11/10+probeTimeout+time.Second, func() error {
			ready, _, err := slices()
			if err != nil {
				return err
			}
			for _, h := range []*testnet.Host{dead, sleepy} {
				if ready[h.IP.String()] {
					return fmt.Errorf("failed backend %s published ready after a restart", h.IP)
				}
			}
			return nil
		})
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		got := &v1alpha1.NetworkIntent{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(in), got); err != nil {
			return err
		}
		e := got.Status.Endpoints
		if e == nil || len(e.Unhealthy) != 2 {
			return fmt.Errorf("endpoints status %+v", got.Status.Endpoints)
		}
		for _, u := range e.Unhealthy {
			if (u.Address != dead.IP.String() && u.Address != sleepy.IP.String()) || u.Reason != "ProbeFailed" {
				return fmt.Errorf("endpoints status %+v", got.Status.Endpoints)
			}
		}
		return nil
	})

	// It serves again: it returns after its passes.
	mu.Lock()
	isDead = false
	mu.Unlock()
	for _, h := range []*testnet.Host{dead, sleepy} {
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitReady(notReadyDeadline*restartHealthyThreshold, map[*testnet.Host]bool{dead: true, live: true, newcomer: true, sleepy: true})
	stop()
	versions, bad := w.counts()
	t.Logf("restart with failed backends: %d slice versions watched, %d published a failed backend ready", versions, len(bad))
	for _, b := range bad {
		t.Error(b)
	}
	if versions < 2 {
		t.Errorf("watched %d slice versions; the new operator's write and the return should both show", versions)
	}
}

func testTargetHealthSurvivesRestart(t *testing.T, cfg *rest.Config, c client.Client, cs kubernetes.Interface, hosts []*testnet.Host) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restart-targets"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	primaryHost := hosts[0]
	primary, standby := "api.restart.test", "api-dr.restart.test"
	testHosts.Set(primary, primaryHost.IP)
	testHosts.Set(standby, hosts[1].IP)
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "payments"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureExternalName,
			HealthCheck: &v1alpha1.HealthCheck{
				Period:             &metav1.Duration{Duration: probePeriod},
				Timeout:            &metav1.Duration{Duration: probeTimeout},
				UnhealthyThreshold: ptr.To[int32](unhealthyThreshold),
				HealthyThreshold:   ptr.To[int32](restartHealthyThreshold),
			},
			ExternalName: &v1alpha1.ExternalNameSpec{
				Targets: []v1alpha1.ExternalTarget{
					{Host: primary, ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](testnet.TCPPort)}}},
					{Host: standby, ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](testnet.TCPPort)}}},
				},
				// Back to the primary as soon as it passes again.
				FailbackAfter: &metav1.Duration{},
			},
		},
	}
	if err := c.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	active := func(want string, targets int) func() error {
		return func() error {
			svc := &corev1.Service{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(in), svc); err != nil {
				return err
			}
			if svc.Spec.ExternalName != want {
				return fmt.Errorf("externalName %q, want %q", svc.Spec.ExternalName, want)
			}
			got := &v1alpha1.NetworkIntent{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(in), got); err != nil {
				return err
			}
			if st := got.Status.ExternalName; st == nil || st.ActiveTarget != want || len(st.Targets) != targets {
				return fmt.Errorf("status %+v, want %s active of %d targets", got.Status.ExternalName, want, targets)
			}
			return nil
		}
	}

	stop := freshOperator(t, cfg)
	testenv.Eventually(t, 20*time.Second, active(primary, 2))
	if err := primaryHost.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*notReadyDeadline, active(standby, 2))
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(in), svc); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	isDead := true
	w := watchVersions(t, svc.ResourceVersion, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = "metadata.name=payments"
		return cs.CoreV1().Services(ns.Name).Watch(ctx, o)
	}, func(obj runtime.Object) string {
		s := obj.(*corev1.Service)
		mu.Lock()
		defer mu.Unlock()
		if isDead && s.Spec.ExternalName == primary {
			return fmt.Sprintf("Service version %s points at the failed target %s", s.ResourceVersion, primary)
		}
		return ""
	})

	stop()
	stop = freshOperator(t, cfg)
	// A third target, unprobed, makes the new operator rewrite status.
	patch := client.MergeFrom(in.DeepCopy())
	in.Spec.ExternalName.Targets = append(in.Spec.ExternalName.Targets, v1alpha1.ExternalTarget{Host: "api-dr2.restart.test"})
	if err := c.Patch(ctx, in, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, active(standby, 3))
	testenv.Consistently(t, probePeriod*unhealthyThreshold*11/10+probeTimeout+time.Second, active(standby, 3))

	mu.Lock()
	isDead = false
	mu.Unlock()
	if err := primaryHost.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, notReadyDeadline*restartHealthyThreshold, active(primary, 3))
	stop()
	versions, bad := w.counts()
	t.Logf("restart with a failed ExternalName target: %d Service versions watched, %d pointed at the failed target", versions, len(bad))
	for _, b := range bad {
		t.Error(b)
	}
	if versions < 1 {
		t.Errorf("watched %d Service versions; the return to the primary should show", versions)
	}
}
