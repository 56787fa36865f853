package controllers

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// observeThreshold makes a fresh detection slow (observeThreshold periods),
// so that a switch to Enforce that acts at once is told apart from one that
// starts judging anew.
const observeThreshold = 5

// TestObserveModeReportsAndLeavesTrafficAlone runs an intent in
// healthCheck.mode Observe over two real backends, one of which stops, next
// to an intent with the same backends and no checks: every version of the
// observed intent's slices keeps both in traffic and its endpoints are those
// of the unchecked intent, while status, an event and the detected counter
// say what the checks found and the enforced counter stays at 0. Switched to
// Enforce, the stopped backend leaves traffic at once, sooner than a fresh
// detection could.
func TestObserveModeReportsAndLeavesTrafficAlone(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 2)
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("starting test host %d: %v", i, err)
		}
	}
	stopped := tn.Hosts[0]
	ns := testEnv.Namespace(t)
	backends := []v1alpha1.Backend{{Address: tn.Hosts[0].IP.String()}, {Address: tn.Hosts[1].IP.String()}}
	ports := []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(testnet.HTTPPort))}}
	observed := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "observed"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP, Backends: backends, Ports: ports,
			HealthCheck: &v1alpha1.HealthCheck{
				Mode:               v1alpha1.HealthCheckObserve,
				ProbeHandler:       v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz"}},
				Period:             &metav1.Duration{Duration: probePeriod},
				Timeout:            &metav1.Duration{Duration: probeTimeout},
				UnhealthyThreshold: ptr.To[int32](observeThreshold),
			},
		},
	}
	unchecked := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unchecked"},
		Spec:       v1alpha1.NetworkIntentSpec{Exposure: v1alpha1.ExposureClusterIP, Backends: backends, Ports: ports},
	}
	for _, in := range []*v1alpha1.NetworkIntent{observed, unchecked} {
		if err := k8sClient.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	bothReady := func(eps map[string]endpointState) error {
		for _, h := range tn.Hosts {
			if !eps[h.IP.String()].ready {
				return fmt.Errorf("%s not ready: %v", h.IP, eps)
			}
		}
		return nil
	}
	waitPublished(t, 20*time.Second, ns, "observed", bothReady)
	waitPublished(t, 20*time.Second, ns, "unchecked", bothReady)
	_, slices, err := published(ctx, ns, "observed")
	if err != nil {
		t.Fatal(err)
	}
	rv := slices[0].ResourceVersion

	// Every version of the observed intent's slices, until the switch.
	cs := kubernetes.NewForConfigOrDie(testEnv.Config)
	enforcing := make(chan struct{})
	w := watchVersions(t, rv, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = discoveryv1.LabelServiceName + "=observed"
		return cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, o)
	}, func(obj runtime.Object) string {
		select {
		case <-enforcing:
			return ""
		default:
		}
		s := obj.(*discoveryv1.EndpointSlice)
		for _, ep := range s.Endpoints {
			if !ptr.Deref(ep.Conditions.Ready, false) {
				return fmt.Sprintf("slice %s version %s publishes %s not ready in mode Observe", s.Name, s.ResourceVersion, ep.Addresses[0])
			}
		}
		return ""
	})

	if err := stopped.Stop(); err != nil {
		t.Fatal(err)
	}
	key := func(name string) []string { return []string{ns, name} }
	testenv.Eventually(t, probePeriod*observeThreshold*2+5*time.Second, func() error {
		got, err := getIntent(ctx, ns, "observed")
		if err != nil {
			return err
		}
		e := got.Status.Endpoints
		if e == nil || e.ObservedCount != 1 || len(e.Observed) != 1 || e.Observed[0].Address != stopped.IP.String() ||
			e.Observed[0].Reason != v1alpha1.EndpointReasonProbeFailed || e.Observed[0].Message != health.FailureConnectionRefused {
			return fmt.Errorf("endpoints status %+v", e)
		}
		if len(e.Unhealthy) != 0 || e.Healthy != 2 {
			return fmt.Errorf("mode Observe reports %d healthy and %v out of traffic", e.Healthy, e.Unhealthy)
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.IntentConditionEndpointsHealthy)
		if c == nil || !strings.Contains(c.Message, "would be out of traffic") {
			return fmt.Errorf("EndpointsHealthy %+v does not say what Enforce would do", c)
		}
		return nil
	})
	if got := testutil.ToFloat64(ejectionsDetected.WithLabelValues(key("observed")...)); got != 1 {
		t.Errorf("ejections detected %v, want 1", got)
	}
	if got := testutil.ToFloat64(ejectionsEnforced.WithLabelValues(key("observed")...)); got != 0 {
		t.Errorf("ejections enforced %v in mode Observe, want 0", got)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, ev := range list.Items {
			if ev.Reason == "EndpointWouldBeUnhealthy" && ev.Regarding.Name == "observed" && strings.Contains(ev.Note, stopped.IP.String()) && ev.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return fmt.Errorf("no EndpointWouldBeUnhealthy event naming %s", stopped.IP)
	})
	// What readiness alone gives: the unchecked intent's endpoints.
	if a, b := sliceEndpoints(t, ns, "observed"), sliceEndpoints(t, ns, "unchecked"); !reflect.DeepEqual(a, b) {
		t.Errorf("mode Observe publishes %+v, readiness alone %+v", a, b)
	}
	// (No version at all is the expected outcome: nothing in traffic
	// changed.)
	if versions, bad := w.counts(); len(bad) > 0 {
		t.Errorf("of %d slice versions written in mode Observe, %d took a backend out: %v", versions, len(bad), bad)
	}

	// Enforce: the verdict the checks have applies at once.
	close(enforcing)
	got, err := getIntent(ctx, ns, "observed")
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(got.DeepCopy())
	got.Spec.HealthCheck.Mode = v1alpha1.HealthCheckEnforce
	if err := k8sClient.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	// A fresh detection would take observeThreshold periods.
	waitPublished(t, probePeriod*(observeThreshold-2), ns, "observed", func(eps map[string]endpointState) error {
		if eps[stopped.IP.String()].ready {
			return fmt.Errorf("stopped backend %s still in traffic after the switch to Enforce", stopped.IP)
		}
		if !eps[tn.Hosts[1].IP.String()].ready {
			return fmt.Errorf("the serving backend left traffic")
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "observed")
		if err != nil {
			return err
		}
		if e := got.Status.Endpoints; e == nil || len(e.Unhealthy) != 1 || len(e.Observed) != 0 || e.ObservedCount != 0 {
			return fmt.Errorf("endpoints status in mode Enforce %+v", got.Status.Endpoints)
		}
		return nil
	})
	if got := testutil.ToFloat64(ejectionsEnforced.WithLabelValues(key("observed")...)); got != 1 {
		t.Errorf("ejections enforced %v after the switch, want 1", got)
	}
}

// sliceEndpoints are the endpoints and ports of a Service's slices, without
// what names the Service.
func sliceEndpoints(t *testing.T, ns, svc string) []discoveryv1.EndpointSlice {
	t.Helper()
	_, slices, err := published(context.Background(), ns, svc)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]discoveryv1.EndpointSlice, len(slices))
	for i, s := range slices {
		out[i] = discoveryv1.EndpointSlice{AddressType: s.AddressType, Endpoints: s.Endpoints, Ports: s.Ports}
	}
	return out
}
