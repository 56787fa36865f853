package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// dualIntent is a ClusterIP intent over the pods app=<name> and a static
// backend of each family, with the given policy (nil: none) and families.
func dualIntent(ns, name string, policy *corev1.IPFamilyPolicy, families ...corev1.IPFamily) *v1alpha1.NetworkIntent {
	in := apiIntent(ns, name)
	in.Spec.Ports[0].TargetPort = nil
	in.Spec.Ports[0].Port = 8080
	in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.30"}, {Address: "2001:db8::30"}}
	in.Spec.IPFamilyPolicy = policy
	in.Spec.IPFamilies = families
	return in
}

// familiesPublished is, per address type, the addresses the intent's
// slices publish (a placeholder slice gives its type an empty list).
func familiesPublished(ctx context.Context, ns, svc string) (map[discoveryv1.AddressType][]string, error) {
	sl, err := slicesOf(ctx, ns, svc)
	if err != nil {
		return nil, err
	}
	out := map[discoveryv1.AddressType][]string{}
	for _, s := range sl {
		if _, ok := out[s.AddressType]; !ok {
			out[s.AddressType] = []string{}
		}
		for _, ep := range s.Endpoints {
			out[s.AddressType] = append(out[s.AddressType], ep.Addresses...)
		}
	}
	for _, addrs := range out {
		slices.Sort(addrs)
	}
	return out, nil
}

func familiesOf(ips []string) []corev1.IPFamily {
	var out []corev1.IPFamily
	for _, ip := range ips {
		out = append(out, endpoints.FamilyOf(netip.MustParseAddr(ip)))
	}
	return out
}

// TestIPFamilyPolicies: each policy gives the Service the families the
// API server gives it, the intent's status shows every cluster IP, and the
// slices publish each family's addresses (a dual-stack pod's two, the
// static backends by family) and nothing of a family the Service has not.
func TestIPFamilyPolicies(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	cases := []struct {
		name     string
		policy   *corev1.IPFamilyPolicy
		families []corev1.IPFamily
		want     []corev1.IPFamily
		// excluded is the static backend left out with FamilyNotServed.
		excluded string
	}{
		{"single", ptr.To(corev1.IPFamilyPolicySingleStack), nil, []corev1.IPFamily{corev1.IPv4Protocol}, "2001:db8::30"},
		{"single-v6", ptr.To(corev1.IPFamilyPolicySingleStack), []corev1.IPFamily{corev1.IPv6Protocol}, []corev1.IPFamily{corev1.IPv6Protocol}, "192.0.2.30"},
		{"prefer", ptr.To(corev1.IPFamilyPolicyPreferDualStack), nil, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}, ""},
		{"require-v6-first", ptr.To(corev1.IPFamilyPolicyRequireDualStack), []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, ""},
	}
	for _, tc := range cases {
		podOn(t, ns, tc.name, tc.name+"-pod", "node-a", "10.30.0.1", "fd00:30::1")
		if err := k8sClient.Create(ctx, dualIntent(ns, tc.name, tc.policy, tc.families...)); err != nil {
			t.Fatalf("%s: creating intent: %v", tc.name, err)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			testenv.Eventually(t, 20*time.Second, func() error {
				svc, err := getService(ctx, ns, tc.name)
				if err != nil {
					in, _ := getIntent(ctx, ns, tc.name)
					return fmt.Errorf("%w; intent conditions %+v", err, in.Status.Conditions)
				}
				if !slices.Equal(svc.Spec.IPFamilies, tc.want) || !slices.Equal(familiesOf(svc.Spec.ClusterIPs), tc.want) {
					return fmt.Errorf("service families %v cluster IPs %v, want %v", svc.Spec.IPFamilies, svc.Spec.ClusterIPs, tc.want)
				}
				in, err := getIntent(ctx, ns, tc.name)
				if err != nil {
					return err
				}
				if !slices.Equal(in.Status.ClusterIPs, svc.Spec.ClusterIPs) || !slices.Equal(in.Status.Addresses, svc.Spec.ClusterIPs) ||
					in.Status.AddressSummary != strings.Join(svc.Spec.ClusterIPs, ",") ||
					in.Status.Address != svc.Spec.ClusterIPs[0] || len(in.Status.IPFamilies) != len(tc.want) || string(in.Status.IPFamilies[0]) != string(tc.want[0]) {
					return fmt.Errorf("intent status address %q addresses %v clusterIPs %v families %v; service has %v", in.Status.Address, in.Status.Addresses, in.Status.ClusterIPs, in.Status.IPFamilies, svc.Spec.ClusterIPs)
				}
				got, err := familiesPublished(ctx, ns, tc.name)
				if err != nil {
					return err
				}
				want := map[discoveryv1.AddressType][]string{}
				for _, f := range tc.want {
					if f == corev1.IPv4Protocol {
						want[discoveryv1.AddressTypeIPv4] = []string{"10.30.0.1", "192.0.2.30"}
					} else {
						want[discoveryv1.AddressTypeIPv6] = []string{"2001:db8::30", "fd00:30::1"}
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Errorf("published %v, want %v", got, want)
				}
				if in.Status.Endpoints == nil {
					return fmt.Errorf("no endpoint status")
				}
				var notServed []string
				for _, u := range in.Status.Endpoints.Unhealthy {
					if u.Reason == v1alpha1.EndpointReasonFamilyNotServed {
						notServed = append(notServed, u.Address)
					}
				}
				if tc.excluded == "" && len(notServed) > 0 || tc.excluded != "" && !slices.Equal(notServed, []string{tc.excluded}) {
					return fmt.Errorf("FamilyNotServed %v, want %q", notServed, tc.excluded)
				}
				return nil
			})
		})
	}
}

// TestDualStackPlaceholderAndDroppedFamily: a family without endpoints
// gets a placeholder slice; removing the second family (PreferDualStack
// to SingleStack) changes the Service in place and deletes that family's
// slices; adding it back restores them.
func TestDualStackPlaceholderAndDroppedFamily(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := dualIntent(ns, "api", ptr.To(corev1.IPFamilyPolicyRequireDualStack))
	in.Spec.Backends = in.Spec.Backends[:1] // IPv4 only
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	var uid string
	testenv.Eventually(t, 20*time.Second, func() error {
		got, err := familiesPublished(ctx, ns, "api")
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(map[discoveryv1.AddressType][]string{"IPv4": {"192.0.2.30"}, "IPv6": {}}) {
			return fmt.Errorf("published %v, want the IPv4 backend and an IPv6 placeholder", got)
		}
		svc, err := getService(ctx, ns, "api")
		if err != nil {
			return err
		}
		uid = string(svc.UID)
		return nil
	})
	sl, err := slicesOf(ctx, ns, "api")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sl {
		if s.AddressType == discoveryv1.AddressTypeIPv6 && (len(s.Ports) != 0 || len(s.Endpoints) != 0) {
			t.Fatalf("placeholder %s has ports %v endpoints %v", s.Name, s.Ports, s.Endpoints)
		}
	}

	// Down to one family, in place.
	testenv.Eventually(t, 10*time.Second, func() error {
		cur, err := getIntent(ctx, ns, "api")
		if err != nil {
			return err
		}
		cur.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		cur.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		return k8sClient.Update(ctx, cur)
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		svc, err := getService(ctx, ns, "api")
		if err != nil {
			return err
		}
		if string(svc.UID) != uid {
			return fmt.Errorf("service was recreated to drop a family")
		}
		if len(svc.Spec.ClusterIPs) != 1 || !slices.Equal(svc.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) {
			return fmt.Errorf("service families %v cluster IPs %v", svc.Spec.IPFamilies, svc.Spec.ClusterIPs)
		}
		got, err := familiesPublished(ctx, ns, "api")
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(map[discoveryv1.AddressType][]string{"IPv4": {"192.0.2.30"}}) {
			return fmt.Errorf("published %v, want IPv4 only", got)
		}
		in, err := getIntent(ctx, ns, "api")
		if err != nil {
			return err
		}
		if len(in.Status.ClusterIPs) != 1 {
			return fmt.Errorf("intent shows cluster IPs %v", in.Status.ClusterIPs)
		}
		return nil
	})

	// Back to two: an IPv6 placeholder again.
	testenv.Eventually(t, 10*time.Second, func() error {
		cur, err := getIntent(ctx, ns, "api")
		if err != nil {
			return err
		}
		cur.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
		return k8sClient.Update(ctx, cur)
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		got, err := familiesPublished(ctx, ns, "api")
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(map[discoveryv1.AddressType][]string{"IPv4": {"192.0.2.30"}, "IPv6": {}}) {
			return fmt.Errorf("published %v, want the IPv4 backend and an IPv6 placeholder", got)
		}
		return nil
	})
}

// TestPrimaryFamilyChangeRecreatesService: the API server refuses to change
// a Service's primary family, so the intent's Service is recreated with
// the new one.
func TestPrimaryFamilyChangeRecreatesService(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := dualIntent(ns, "api", ptr.To(corev1.IPFamilyPolicySingleStack), corev1.IPv4Protocol)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	var uid string
	testenv.Eventually(t, 20*time.Second, func() error {
		svc, err := getService(ctx, ns, "api")
		if err != nil {
			return err
		}
		uid = string(svc.UID)
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		cur, err := getIntent(ctx, ns, "api")
		if err != nil {
			return err
		}
		cur.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		return k8sClient.Update(ctx, cur)
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		svc, err := getService(ctx, ns, "api")
		if err != nil {
			return err
		}
		if string(svc.UID) == uid || !slices.Equal(svc.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv6Protocol}) {
			return fmt.Errorf("service %s families %v", svc.UID, svc.Spec.IPFamilies)
		}
		got, err := familiesPublished(ctx, ns, "api")
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(map[discoveryv1.AddressType][]string{"IPv6": {"2001:db8::30"}}) {
			return fmt.Errorf("published %v", got)
		}
		return nil
	})
}

// lbAddresses reads the addresses a Service shows, and its condition.
func lbAddresses(ctx context.Context, ns, name string) ([]string, *metav1.Condition, error) {
	svc, err := getService(ctx, ns, name)
	if err != nil {
		return nil, nil, err
	}
	cond := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned)
	if cond == nil {
		return nil, nil, fmt.Errorf("no condition on service %s", name)
	}
	var ips []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ips = append(ips, ing.IP)
	}
	return ips, cond, nil
}

// TestDualStackLoadBalancer: a dual-stack LoadBalancer intent gets an
// address of each family from the one pool that holds both; with only a
// pool of one family, RequireDualStack waits with NoDualStackPool and
// PreferDualStack takes the one family, then gets the second when the pool
// gains it, keeping the first.
func TestDualStackLoadBalancer(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	// A pool of IPv4 only, and one of both families.
	testenv.CreateT(t, k8sClient, testenv.Pool("dual-v4only-"+ns, selectNamespace(ns), "198.51.100.200/30"))

	require := poolIntent(ns, "require", "", "")
	require.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	prefer := poolIntent(ns, "prefer", "", "")
	prefer.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
	createIntents(t, require, prefer)

	var preferV4 string
	testenv.Eventually(t, 20*time.Second, func() error {
		ips, cond, err := lbAddresses(ctx, ns, "require")
		if err != nil {
			return err
		}
		if len(ips) != 0 || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.AddressReasonNoDualStackPool ||
			!strings.Contains(cond.Message, "RequireDualStack needs a free IPv4 and a free IPv6 address from one pool") {
			return fmt.Errorf("require: %v %s/%s %q", ips, cond.Status, cond.Reason, cond.Message)
		}
		in, err := getIntent(ctx, ns, "require")
		if err != nil {
			return err
		}
		if err := testenv.IntentCondition(in, v1alpha1.IntentConditionAddressAssigned, metav1.ConditionFalse, v1alpha1.AddressReasonNoDualStackPool); err != nil {
			return err
		}
		ips, cond, err = lbAddresses(ctx, ns, "prefer")
		if err != nil {
			return err
		}
		if len(ips) != 1 || !netip.MustParseAddr(ips[0]).Is4() || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "single-stack for now") {
			return fmt.Errorf("prefer: %v %s/%s %q", ips, cond.Status, cond.Reason, cond.Message)
		}
		preferV4 = ips[0]
		return nil
	})

	// A pool of both families: require gets both from it.
	testenv.CreateT(t, k8sClient, testenv.Pool("dual-both-"+ns, selectNamespace(ns), "198.51.100.210/31", "2001:db8:210::/126"))
	testenv.Eventually(t, 20*time.Second, func() error {
		ips, cond, err := lbAddresses(ctx, ns, "require")
		if err != nil {
			return err
		}
		if len(ips) != 2 || !netip.MustParseAddr(ips[0]).Is4() || !netip.MustParseAddr(ips[1]).Is6() || cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("require: %v %s/%s %q", ips, cond.Status, cond.Reason, cond.Message)
		}
		for _, ip := range ips {
			if !netip.MustParsePrefix("198.51.100.210/31").Contains(netip.MustParseAddr(ip)) && !netip.MustParsePrefix("2001:db8:210::/126").Contains(netip.MustParseAddr(ip)) {
				return fmt.Errorf("require: %s is not from the pool of both families", ip)
			}
		}
		in, err := getIntent(ctx, ns, "require")
		if err != nil {
			return err
		}
		if !slices.Equal(in.Status.Addresses, ips) || in.Status.AddressSummary != ips[0]+","+ips[1] ||
			in.Status.LoadBalancer == nil || !slices.Equal(in.Status.LoadBalancer.Ingress, ips) {
			return fmt.Errorf("intent shows addresses %v lb %+v, service %v", in.Status.Addresses, in.Status.LoadBalancer, ips)
		}
		// prefer keeps its IPv4 address and adds an IPv6 one.
		ips, cond, err = lbAddresses(ctx, ns, "prefer")
		if err != nil {
			return err
		}
		if len(ips) != 2 || ips[0] != preferV4 || !netip.MustParseAddr(ips[1]).Is6() || cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("prefer: %v %s/%s %q; want %s kept and an IPv6 address", ips, cond.Status, cond.Reason, cond.Message, preferV4)
		}
		return nil
	})

	// Both addresses stay across a restart of the allocation (a fresh
	// allocator re-claims them from status): see TestDualStackAddressesSurviveRestart.
}

// TestDualStackFamilyValidation: admission refuses what the API server
// would refuse of the Service.
func TestDualStackFamilyValidation(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	cases := []struct {
		name    string
		mutate  func(*v1alpha1.NetworkIntent)
		message string
	}{
		{"single-two", func(in *v1alpha1.NetworkIntent) {
			in.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
			in.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}, "two ipFamilies need ipFamilyPolicy PreferDualStack or RequireDualStack"},
		{"two-no-policy", func(in *v1alpha1.NetworkIntent) {
			in.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
		}, "two ipFamilies need ipFamilyPolicy PreferDualStack or RequireDualStack"},
		{"twice", func(in *v1alpha1.NetworkIntent) {
			in.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv6Protocol}
		}, "ipFamilies must not list a family twice"},
		{"externalname", func(in *v1alpha1.NetworkIntent) {
			setExposure(in, v1alpha1.ExposureExternalName)
			in.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
		}, "ipFamilyPolicy and ipFamilies are not valid with exposure ExternalName"},
		{"unknown", func(in *v1alpha1.NetworkIntent) {
			in.Spec.IPFamilies = []corev1.IPFamily{"IPv5"}
		}, "Unsupported value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := webIntent(ns, tc.name, v1alpha1.ExposureClusterIP)
			tc.mutate(in)
			err := k8sClient.Create(ctx, in)
			if err == nil || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("create: %v; want refused with %q", err, tc.message)
			}
		})
	}
}

// TestHealthPerFamily: each address of a dual-stack backend is probed on
// its own. Closing only a backend's IPv6 listener takes its IPv6 endpoint
// out of traffic and leaves its IPv4 one in; status names the family, the
// address and why. Pods and static backends alike.
func TestHealthPerFamily(t *testing.T) {
	ctx := context.Background()
	tn := testnet.New(t, 3)
	ns := testEnv.Namespace(t)
	in := testenv.Intent(ns, "dual").IPFamilyPolicy(corev1.IPFamilyPolicyRequireDualStack).SelectApp("dual").HTTPPort(testnet.HTTPPort).
		HTTPProbe(probePeriod, probeTimeout, unhealthyThreshold).HealthyThreshold(1).Build()
	for i, h := range tn.Hosts {
		if err := h.Start(ctx); err != nil {
			t.Fatalf("starting test host %d: %v", i, err)
		}
	}
	// Hosts 0 and 1 back dual-stack pods; host 2 is a static backend by
	// both of its addresses.
	podOn(t, ns, "dual", "backend-0", "node-a", tn.Hosts[0].IP.String(), tn.Hosts[0].IP6.String())
	podOn(t, ns, "dual", "backend-1", "node-a", tn.Hosts[1].IP.String(), tn.Hosts[1].IP6.String())
	in.Spec.Backends = []v1alpha1.Backend{{Address: tn.Hosts[2].IP.String()}, {Address: tn.Hosts[2].IP6.String()}}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, h := range tn.Hosts {
		all = append(all, h.IP.String(), h.IP6.String())
	}
	waitPublished(t, 20*time.Second, ns, "dual", func(eps map[string]endpointState) error {
		for _, a := range all {
			if !eps[a].ready {
				return fmt.Errorf("%s not ready: %v", a, eps)
			}
		}
		return nil
	})

	// Only the IPv6 listeners of a pod's host and of the static backend die.
	for _, h := range []*testnet.Host{tn.Hosts[0], tn.Hosts[2]} {
		if err := h.CloseListeners(ctx, h.IP6); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]bool{tn.Hosts[0].IP6.String(): true, tn.Hosts[2].IP6.String(): true}
	waitPublished(t, notReadyDeadline, ns, "dual", func(eps map[string]endpointState) error {
		for _, a := range all {
			if eps[a].ready == out[a] {
				return fmt.Errorf("%s ready %v, want %v", a, eps[a].ready, !out[a])
			}
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "dual")
		if err != nil {
			return err
		}
		e := got.Status.Endpoints
		if e == nil || e.Total != 6 || e.Healthy != 4 || len(e.Unhealthy) != 2 {
			return fmt.Errorf("endpoints status %+v", e)
		}
		for _, u := range e.Unhealthy {
			if !out[u.Address] || u.Family != corev1.IPv6Protocol || u.Reason != v1alpha1.EndpointReasonProbeFailed || u.Message != health.FailureConnectionRefused {
				return fmt.Errorf("unhealthy %+v", u)
			}
		}
		return testenv.IntentCondition(got, v1alpha1.IntentConditionEndpointsHealthy, metav1.ConditionFalse, v1alpha1.IntentReasonDegraded)
	})
	// The IPv4 addresses stay in traffic while the IPv6 ones stay out.
	testenv.Consistently(t, 2*probePeriod, func() error {
		eps, _, err := published(ctx, ns, "dual")
		if err != nil {
			return err
		}
		for _, a := range all {
			if eps[a].ready == out[a] {
				return fmt.Errorf("%s ready %v", a, eps[a].ready)
			}
		}
		return nil
	})
}

// TestDualStackAddressesSurviveRestart: both addresses of dual-stack
// Services stay theirs across an operator restart, although a Service that
// appears while the operator is down, named to be reconciled first, would
// take them if the operator allocated before re-claiming.
func TestDualStackAddressesSurviveRestart(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{})
	cfg, c := cp.Config, cp.Client
	ctx := context.Background()
	ns := "restart-dual"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// Room for two dual-stack Services, with IPv4 addresses to spare.
	if err := c.Create(ctx, &v1alpha1.AddressPool{
		ObjectMeta: metav1.ObjectMeta{Name: "restart-dual"},
		Spec:       v1alpha1.AddressPoolSpec{Addresses: []string{"203.0.113.96/30", "2001:db8:96::/127"}},
	}); err != nil {
		t.Fatal(err)
	}
	dual := func(name string, policy corev1.IPFamilyPolicy) *v1alpha1.NetworkIntent {
		in := poolIntent(ns, name, "", "")
		in.Spec.IPFamilyPolicy = ptr.To(policy)
		return in
	}
	for _, in := range []*v1alpha1.NetworkIntent{dual("web-require", corev1.IPFamilyPolicyRequireDualStack), dual("web-prefer", corev1.IPFamilyPolicyPreferDualStack)} {
		if err := c.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	shown := func(name string) ([]string, error) {
		svc := &corev1.Service{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
			return nil, err
		}
		var ips []string
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, ing.IP)
		}
		return ips, nil
	}
	stop := startOperator(t, cfg)
	want := map[string][]string{}
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, name := range []string{"web-require", "web-prefer"} {
			ips, err := shown(name)
			if err != nil {
				return err
			}
			if len(ips) != 2 {
				return fmt.Errorf("%s shows %v", name, ips)
			}
			want[name] = ips
		}
		return nil
	})
	stop()

	// While the operator is down: a dual-stack Service that sorts first.
	early := dual("a-early", corev1.IPFamilyPolicyPreferDualStack)
	if err := c.Create(ctx, early); err != nil {
		t.Fatal(err)
	}
	stop = startOperator(t, cfg)
	defer stop()
	testenv.Eventually(t, 30*time.Second, func() error {
		ips, err := shown("a-early")
		if err != nil {
			return err
		}
		// One IPv4 address is left, and no IPv6 one: PreferDualStack
		// takes the one family.
		if len(ips) != 1 || !netip.MustParseAddr(ips[0]).Is4() {
			return fmt.Errorf("a-early shows %v", ips)
		}
		return nil
	})
	testenv.Consistently(t, 2*time.Second, func() error {
		for name, ips := range want {
			got, err := shown(name)
			if err != nil {
				return err
			}
			if !slices.Equal(got, ips) {
				return fmt.Errorf("%s shows %v after the restart, had %v", name, got, ips)
			}
		}
		return nil
	})
}
