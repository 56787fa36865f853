package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// failoverDeadline is the longest from a target's server exiting to the
// alias (Service and DNS answer) leaving it: period x unhealthyThreshold
// + timeout + 1 s.
var failoverDeadline = probePeriod*unhealthyThreshold + probeTimeout + time.Second

// targetTiming is the probe timing of the failover tests.
func targetTiming() *v1alpha1.HealthCheck {
	return &v1alpha1.HealthCheck{
		Period:             &metav1.Duration{Duration: probePeriod},
		Timeout:            &metav1.Duration{Duration: probeTimeout},
		UnhealthyThreshold: ptr.To[int32](unhealthyThreshold),
		HealthyThreshold:   ptr.To[int32](1),
	}
}

// failoverIntent is an ExternalName intent over primary and secondary, both
// probed over TCP on the test hosts' port, with the suite's probe timing
// and a one-second TTL.
func failoverIntent(ns, primary, secondary string, failback v1alpha1.FailbackPolicy, after *time.Duration) *v1alpha1.NetworkIntent {
	tcp := v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: ptr.To[int32](testnet.TCPPort)}}
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:    v1alpha1.ExposureExternalName,
			HealthCheck: targetTiming(),
			ExternalName: &v1alpha1.ExternalNameSpec{
				Targets: []v1alpha1.ExternalTarget{
					{Host: primary, ProbeHandler: tcp},
					{Host: secondary, ProbeHandler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Path: "/healthz", Port: ptr.To[int32](testnet.HTTPPort)}}},
				},
				Failback: failback,
			},
			DNS: &v1alpha1.DNSSpec{TTL: ptr.To[int32](1)},
		},
	}
	if after != nil {
		in.Spec.ExternalName.FailbackAfter = &metav1.Duration{Duration: *after}
	}
	return in
}

// failoverNames registers primary and secondary names for two started test
// hosts in the test zone, which only the suite's DNS server forwards to.
func failoverNames(t *testing.T, ns string) (primary, secondary string, hosts []*testnet.Host) {
	t.Helper()
	tn := testnet.New(t, 2)
	for i, h := range tn.Hosts {
		if err := h.Start(context.Background()); err != nil {
			t.Fatalf("starting test host %d: %v", i, err)
		}
	}
	primary, secondary = "primary."+ns+".example.test", "secondary."+ns+".example.test"
	testHosts.Set(primary, tn.Hosts[0].IP)
	testHosts.Set(secondary, tn.Hosts[1].IP)
	return primary, secondary, tn.Hosts
}

// dnsAnswer asks the suite's DNS server, with a real client, for the A
// records of the intent's Service name, and returns the CNAME target of the
// answer (without the final dot), its TTL, and the addresses.
func dnsAnswer(ns, name string) (target string, ttl uint32, addrs []netip.Addr, err error) {
	select {
	case <-suiteDNS.Listening():
	default:
		return "", 0, nil, errors.New("the suite's DNS server is not listening yet")
	}
	q := new(dns.Msg)
	q.SetQuestion(name+"."+ns+".svc.cluster.local.", dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(q, suiteDNS.Addr())
	if err != nil {
		return "", 0, nil, fmt.Errorf("asking the DNS server: %w", err)
	}
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.CNAME:
			if target == "" {
				target, ttl = strings.TrimSuffix(rr.Target, "."), rr.Hdr.Ttl
			}
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if target == "" {
		return "", 0, nil, fmt.Errorf("no CNAME in the answer: %v", r)
	}
	return target, ttl, addrs, nil
}

// aliasIs checks that the Service, status.externalName and the DNS answer
// all point at host, with the intent's one-second TTL.
func aliasIs(ns, host string) func() error {
	ctx := context.Background()
	return func() error {
		svc, err := getService(ctx, ns, "payments")
		if err != nil {
			return err
		}
		if svc.Spec.ExternalName != host {
			return fmt.Errorf("Service externalName %q, want %q", svc.Spec.ExternalName, host)
		}
		in, err := getIntent(ctx, ns, "payments")
		if err != nil {
			return err
		}
		if st := in.Status.ExternalName; st == nil || st.ActiveTarget != host {
			return fmt.Errorf("status.externalName %+v, want active %s", st, host)
		}
		target, ttl, _, err := dnsAnswer(ns, "payments")
		if err != nil {
			return err
		}
		if target != host || ttl != 1 {
			return fmt.Errorf("DNS CNAME %s ttl %d, want %s ttl 1", target, ttl, host)
		}
		return nil
	}
}

// targetHealth checks each target's health in status, in order.
func targetHealth(ns string, healthy ...bool) func() error {
	return func() error {
		in, err := getIntent(context.Background(), ns, "payments")
		if err != nil {
			return err
		}
		st := in.Status.ExternalName
		if st == nil || len(st.Targets) != len(healthy) {
			return fmt.Errorf("status.externalName %+v", st)
		}
		for i, h := range healthy {
			if st.Targets[i].Healthy != h {
				return fmt.Errorf("target %s healthy %v, want %v (%s)", st.Targets[i].Host, st.Targets[i].Healthy, h, st.Targets[i].Message)
			}
		}
		return nil
	}
}

// eventSeen checks that an event of reason was recorded for the intent.
func eventSeen(ns, reason string) func() error {
	return func() error {
		evs := &eventsv1.EventList{}
		if err := k8sClient.List(context.Background(), evs, client.InNamespace(ns)); err != nil {
			return err
		}
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.Name == "payments" && e.Reason == reason {
				return nil
			}
			reasons = append(reasons, e.Reason)
		}
		return fmt.Errorf("no %s event; events: %v", reason, reasons)
	}
}

// TestExternalNameFailoverAndAutomaticFailback stops the primary's server:
// the Service's externalName and the DNS answer move to the secondary
// within the deadline; started again, the primary is published again only
// after failbackAfter.
func TestExternalNameFailoverAndAutomaticFailback(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	primary, secondary, hosts := failoverNames(t, ns)
	failbackAfter := 4 * time.Second
	if err := k8sClient.Create(ctx, failoverIntent(ns, primary, secondary, "", &failbackAfter)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, aliasIs(ns, primary))
	testenv.Eventually(t, 10*time.Second, targetHealth(ns, true, true))
	testenv.Eventually(t, 2*probePeriod+time.Second, func() error {
		in, err := getIntent(ctx, ns, "payments")
		if err != nil {
			return err
		}
		for _, ts := range in.Status.ExternalName.Targets {
			if ts.Addresses != 1 || ts.PassingAddresses != 1 || ts.LastTransitionTime == nil {
				return fmt.Errorf("target status %+v: want 1 address probed, 1 passing, and a transition time", ts)
			}
		}
		return nil
	})
	failovers := func() float64 { return testutil.ToFloat64(failoversTotal.WithLabelValues(ns, "payments")) }
	before := failovers()

	if err := hosts[0].Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	testenv.Eventually(t, failoverDeadline, aliasIs(ns, secondary))
	t.Logf("alias moved %v after the primary's server exited (deadline %v)", time.Since(stopped).Round(time.Millisecond), failoverDeadline)
	testenv.Eventually(t, 5*time.Second, targetHealth(ns, false, true))
	in, err := getIntent(ctx, ns, "payments")
	if err != nil {
		t.Fatal(err)
	}
	if msg := in.Status.ExternalName.Targets[0].Message; msg != health.FailureConnectionRefused {
		t.Errorf("primary's failure %q, want %s", msg, health.FailureConnectionRefused)
	}
	if err := testenv.IntentCondition(in, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonDegraded); err != nil {
		t.Error(err)
	}
	if got := failovers(); got != before+1 {
		t.Errorf("failover counter %v, want %v", got, before+1)
	}
	testenv.Eventually(t, 5*time.Second, eventSeen(ns, eventTargetFailover))

	// The primary comes back: the alias stays on the secondary until the
	// primary has passed for failbackAfter, then returns.
	if err := hosts[0].Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*probePeriod+time.Second, targetHealth(ns, true, true))
	healthyAt := time.Now()
	testenv.Consistently(t, failbackAfter-200*time.Millisecond, aliasIs(ns, secondary))
	testenv.Eventually(t, 3*time.Second, aliasIs(ns, primary))
	t.Logf("alias returned %v after the primary was seen healthy (failbackAfter %v)", time.Since(healthyAt).Round(time.Millisecond), failbackAfter)
	testenv.Eventually(t, 5*time.Second, eventSeen(ns, eventTargetFailback))
	if got := testutil.ToFloat64(failbacksTotal.WithLabelValues(ns, "payments")); got != 1 {
		t.Errorf("failback counter %v, want 1", got)
	}
	if got := failovers(); got != before+1 {
		t.Errorf("failover counter %v after the failback, want %v", got, before+1)
	}
}

// TestExternalNameManualFailbackAndAllDown: with failback Manual the alias
// stays on the secondary after the primary recovers, until the
// failback-now annotation asks; with every target down, the last published
// stays, with NoHealthyTarget.
func TestExternalNameManualFailbackAndAllDown(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	primary, secondary, hosts := failoverNames(t, ns)
	if err := k8sClient.Create(ctx, failoverIntent(ns, primary, secondary, v1alpha1.FailbackManual, nil)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, aliasIs(ns, primary))
	if err := hosts[0].Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, failoverDeadline, aliasIs(ns, secondary))
	if err := hosts[0].Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*probePeriod+time.Second, targetHealth(ns, true, true))
	testenv.Consistently(t, 3*time.Second, aliasIs(ns, secondary))

	// Asked, the operator fails back and removes the annotation.
	in, err := getIntent(ctx, ns, "payments")
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(in.DeepCopy())
	metav1.SetMetaDataAnnotation(&in.ObjectMeta, v1alpha1.AnnotationFailbackNow, "true")
	if err := k8sClient.Patch(ctx, in, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, aliasIs(ns, primary))
	testenv.Eventually(t, 5*time.Second, func() error {
		in, err := getIntent(ctx, ns, "payments")
		if err != nil {
			return err
		}
		if _, ok := in.Annotations[v1alpha1.AnnotationFailbackNow]; ok {
			return errors.New("the failback-now annotation is still there")
		}
		return nil
	})
	testenv.Eventually(t, 5*time.Second, eventSeen(ns, eventTargetFailback))

	// Both fail: the secondary, published last, stays published.
	if err := hosts[0].Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, failoverDeadline, aliasIs(ns, secondary))
	if err := hosts[1].Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForCondition(t, k8sClient, client.ObjectKey{Namespace: ns, Name: "payments"}, v1alpha1.IntentConditionReady, metav1.ConditionFalse, v1alpha1.IntentReasonNoHealthyTarget, failoverDeadline)
	testenv.Consistently(t, 2*time.Second, aliasIs(ns, secondary))
	testenv.Eventually(t, 5*time.Second, eventSeen(ns, v1alpha1.IntentReasonNoHealthyTarget))
}

// TestExternalNameTargetsResolvingToRefusedAddresses: targets whose names
// resolve to loopback or the metadata address are never dialled and are
// unhealthy with ForbiddenTarget; a name that does not resolve is
// unhealthy with NoAddress.
func TestExternalNameTargetsResolvingToRefusedAddresses(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	loopback, metadata, missing := "loopback."+ns+".example.test", "metadata."+ns+".example.test", "missing."+ns+".example.test"
	testHosts.Set(loopback, netip.MustParseAddr("127.0.0.1"))
	testHosts.Set(metadata, netip.MustParseAddr("169.254.169.254"))
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "payments"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure:    v1alpha1.ExposureExternalName,
			HealthCheck: targetTiming(),
			ExternalName: &v1alpha1.ExternalNameSpec{Targets: []v1alpha1.ExternalTarget{
				{Host: loopback, ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: &port}}},
				{Host: metadata, ProbeHandler: v1alpha1.ProbeHandler{HTTP: &v1alpha1.HTTPProbe{Port: &port}}},
				{Host: missing, ProbeHandler: v1alpha1.ProbeHandler{TCP: &v1alpha1.TCPProbe{Port: &port}}},
			}},
		},
	}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "payments")
		if err != nil {
			return err
		}
		st := got.Status.ExternalName
		if st == nil || len(st.Targets) != 3 {
			return fmt.Errorf("status.externalName %+v", st)
		}
		want := []string{health.FailureForbiddenTarget, health.FailureForbiddenTarget, health.FailureNoAddress}
		for i, ts := range st.Targets {
			if ts.Healthy || !strings.HasPrefix(ts.Message, want[i]) || ts.Addresses != 0 {
				return fmt.Errorf("target %s: %+v, want unhealthy %s with no address dialled", ts.Host, ts, want[i])
			}
		}
		// Each target starts healthy, so the alias moves down the list
		// as each fails; whichever was published last stays.
		if !slices.Contains([]string{loopback, metadata, missing}, st.ActiveTarget) {
			return fmt.Errorf("active %q, want one of the targets, published last, when none is healthy", st.ActiveTarget)
		}
		svc, err := getService(ctx, ns, "payments")
		if err != nil {
			return err
		}
		if svc.Spec.ExternalName != st.ActiveTarget {
			return fmt.Errorf("Service externalName %q, status says %q", svc.Spec.ExternalName, st.ActiveTarget)
		}
		return testenv.IntentCondition(got, v1alpha1.IntentConditionReady, metav1.ConditionFalse, v1alpha1.IntentReasonNoHealthyTarget)
	})
	// Let every target be probed twice more, then prove no probe reached
	// the listener.
	mark := time.Now()
	for range 2 {
		testenv.Eventually(t, 3*probePeriod, func() error {
			states := suiteProber.Status(types.NamespacedName{Namespace: ns, Name: "payments"})
			if len(states) != 3 {
				return fmt.Errorf("prober has %d targets, want 3", len(states))
			}
			for id, st := range states {
				if !st.LastProbe.After(mark) {
					return fmt.Errorf("%s not probed since %v", id, mark)
				}
			}
			return nil
		})
		mark = time.Now()
	}
	if err := testnet.NothingConnected(ln); err != nil {
		t.Errorf("a refused target was dialled: %v", err)
	}
}

// TestExternalNameFailoverTimes fails the primary over ten times in a row
// and logs, from its server's exit to the DNS answer naming the secondary,
// the median and the worst, with the settings used.
func TestExternalNameFailoverTimes(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	primary, secondary, hosts := failoverNames(t, ns)
	zero := time.Duration(0)
	if err := k8sClient.Create(ctx, failoverIntent(ns, primary, secondary, v1alpha1.FailbackAutomatic, &zero)); err != nil {
		t.Fatal(err)
	}
	var times []time.Duration
	for i := range 10 {
		testenv.Eventually(t, 20*time.Second, aliasIs(ns, primary))
		if err := hosts[0].Stop(); err != nil {
			t.Fatal(err)
		}
		exited := time.Now()
		deadline := exited.Add(failoverDeadline)
		for {
			target, _, _, err := dnsAnswer(ns, "payments")
			if err == nil && target == secondary {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("failover %d: the DNS answer still names %q (%v) %v after the primary's server exited", i, target, err, failoverDeadline)
			}
			time.Sleep(10 * time.Millisecond)
		}
		times = append(times, time.Since(exited))
		if err := hosts[0].Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(times)
	t.Logf("10 failovers, server exit to DNS answer change: p50 %v, worst %v (period %v, timeout %v, unhealthyThreshold %d, healthyThreshold 1, dns.ttl 1s, deadline %v); all: %v",
		times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond),
		probePeriod, probeTimeout, unhealthyThreshold, failoverDeadline, times)
}
