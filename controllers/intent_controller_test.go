package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/dnsserver"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/testenv"
)

func setupReconcilers(mgr ctrl.Manager) error {
	if err := testHosts.Start(); err != nil {
		return err
	}
	go func() { <-suiteCtx.Done(); testHosts.Close() }()
	// The suite's DNS server forwards to the test zone alone, and the
	// prober resolves target names through it, as the operator does.
	var err error
	if suiteDNS, err = startSuiteDNS(mgr, testHosts.Addr); err != nil {
		return err
	}
	suiteProber = health.NewProber(health.Options{Checker: &health.Checker{
		HostResolver: health.ResolverFunc(suiteDNS.Resolve, dnsserver.ErrNoAddresses),
	}})
	if err := mgr.Add(suiteProber); err != nil {
		return err
	}
	return SetupWithManager(mgr, Options{Prober: suiteProber})
}

// suiteProber is the prober of the suite's manager.
var suiteProber *health.Prober

func webIntent(ns, name string, exposure v1alpha1.Exposure) *v1alpha1.NetworkIntent {
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: exposure,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Ports: []v1alpha1.IntentPort{
				{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080)), AppProtocol: ptr.To("http")},
				{Name: "metrics", Port: 9090},
			},
			// A static backend makes the intent Ready without pods;
			// nothing probes it.
			Backends: []v1alpha1.Backend{{Address: "192.0.2.10"}},
		},
	}
	setExposure(in, exposure)
	return in
}

// setExposure changes the intent's exposure and the fields that go with it.
func setExposure(in *v1alpha1.NetworkIntent, exposure v1alpha1.Exposure) {
	in.Spec.Exposure = exposure
	in.Spec.ExternalName = nil
	in.Spec.LoadBalancer = nil
	if in.Spec.Ports == nil {
		in.Spec.Ports = []v1alpha1.IntentPort{{Name: "http", Port: 80}}
	}
	if in.Spec.Selector == nil {
		in.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": in.Name}}
	}
	switch exposure {
	case v1alpha1.ExposureExternalName:
		in.Spec.Selector = nil
		in.Spec.Ports = nil
		in.Spec.Backends = nil
		in.Spec.ExternalName = &v1alpha1.ExternalNameSpec{Targets: []v1alpha1.ExternalTarget{{Host: "api.payments.example.com"}}}
	case v1alpha1.ExposureLoadBalancer:
		// Local sends outside traffic to pods on the receiving node
		// only: static backends are refused with it.
		in.Spec.LoadBalancer = &v1alpha1.LoadBalancerSpec{Class: "example.com/lb", ExternalTrafficPolicy: "Local"}
		in.Spec.Backends = nil
	default:
		in.Spec.Backends = []v1alpha1.Backend{{Address: "192.0.2.10"}}
	}
}

func getService(ctx context.Context, ns, name string) (*corev1.Service, error) {
	svc := &corev1.Service{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc)
	return svc, err
}

func getIntent(ctx context.Context, ns, name string) (*v1alpha1.NetworkIntent, error) {
	in := &v1alpha1.NetworkIntent{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, in)
	return in, err
}

// checkService compares the intent's Service with what the exposure declares.
func checkService(svc *corev1.Service, in *v1alpha1.NetworkIntent) error {
	wantType := map[v1alpha1.Exposure]corev1.ServiceType{
		v1alpha1.ExposureClusterIP: corev1.ServiceTypeClusterIP, v1alpha1.ExposureNodePort: corev1.ServiceTypeNodePort,
		v1alpha1.ExposureLoadBalancer: corev1.ServiceTypeLoadBalancer, v1alpha1.ExposureExternalName: corev1.ServiceTypeExternalName,
	}[in.Spec.Exposure]
	if svc.Spec.Type != wantType {
		return fmt.Errorf("service type %s, want %s", svc.Spec.Type, wantType)
	}
	if len(svc.Spec.Selector) != 0 {
		return fmt.Errorf("service has a selector %v", svc.Spec.Selector)
	}
	if !metav1.IsControlledBy(svc, in) {
		return fmt.Errorf("service is not controlled by the intent: %+v", svc.OwnerReferences)
	}
	switch in.Spec.Exposure {
	case v1alpha1.ExposureExternalName:
		if svc.Spec.ExternalName != in.Spec.ExternalName.Targets[0].Host {
			return fmt.Errorf("externalName %q", svc.Spec.ExternalName)
		}
		return nil
	case v1alpha1.ExposureLoadBalancer:
		if svc.Spec.LoadBalancerClass == nil || *svc.Spec.LoadBalancerClass != in.Spec.LoadBalancer.Class {
			return fmt.Errorf("loadBalancerClass %v", svc.Spec.LoadBalancerClass)
		}
		if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			return fmt.Errorf("externalTrafficPolicy %q", svc.Spec.ExternalTrafficPolicy)
		}
	}
	if len(svc.Spec.Ports) != len(in.Spec.Ports) {
		return fmt.Errorf("service has %d ports, want %d", len(svc.Spec.Ports), len(in.Spec.Ports))
	}
	for i, p := range in.Spec.Ports {
		sp := svc.Spec.Ports[i]
		want := intstr.FromInt32(p.Port)
		if p.TargetPort != nil {
			want = *p.TargetPort
		}
		if sp.Name != p.Name || sp.Port != p.Port || sp.TargetPort != want || sp.Protocol != corev1.ProtocolTCP {
			return fmt.Errorf("port %d is %+v, want %+v", i, sp, p)
		}
		if ptr.Deref(sp.AppProtocol, "") != ptr.Deref(p.AppProtocol, "") {
			return fmt.Errorf("port %d appProtocol %v", i, sp.AppProtocol)
		}
		hasNodePort := sp.NodePort != 0
		if wantNode := in.Spec.Exposure != v1alpha1.ExposureClusterIP; hasNodePort != wantNode {
			return fmt.Errorf("port %d nodePort %d with exposure %s", i, sp.NodePort, in.Spec.Exposure)
		}
	}
	return nil
}

// checkStatus compares the intent's status with its Service.
func checkStatus(in *v1alpha1.NetworkIntent, svc *corev1.Service) error {
	if in.Status.ObservedGeneration != in.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", in.Status.ObservedGeneration, in.Generation)
	}
	if err := testenv.IntentCondition(in, v1alpha1.IntentConditionServiceReady, metav1.ConditionTrue, v1alpha1.IntentReasonApplied); err != nil {
		return err
	}
	if in.Status.ServiceName != svc.Name {
		return fmt.Errorf("status serviceName %q", in.Status.ServiceName)
	}
	switch in.Spec.Exposure {
	case v1alpha1.ExposureExternalName:
		if in.Status.Address != svc.Spec.ExternalName || len(in.Status.ClusterIPs) != 0 {
			return fmt.Errorf("status address %q clusterIPs %v", in.Status.Address, in.Status.ClusterIPs)
		}
		return testenv.IntentCondition(in, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady)
	case v1alpha1.ExposureLoadBalancer:
		// Nobody serves class example.com/lb here: pending, and not Ready.
		if err := testenv.IntentCondition(in, v1alpha1.IntentConditionAddressAssigned, metav1.ConditionFalse, v1alpha1.AddressReasonPending); err != nil {
			return err
		}
		if err := testenv.IntentCondition(in, v1alpha1.IntentConditionReady, metav1.ConditionFalse, v1alpha1.AddressReasonPending); err != nil {
			return err
		}
	default:
		if in.Status.Address != svc.Spec.ClusterIP || in.Status.Address == "" {
			return fmt.Errorf("status address %q, cluster IP %q", in.Status.Address, svc.Spec.ClusterIP)
		}
		if err := testenv.IntentCondition(in, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady); err != nil {
			return err
		}
	}
	if fmt.Sprint(in.Status.ClusterIPs) != fmt.Sprint(svc.Spec.ClusterIPs) {
		return fmt.Errorf("status clusterIPs %v, service %v", in.Status.ClusterIPs, svc.Spec.ClusterIPs)
	}
	var nodePorts []v1alpha1.NodePortStatus
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			nodePorts = append(nodePorts, v1alpha1.NodePortStatus{Name: p.Name, NodePort: p.NodePort})
		}
	}
	if fmt.Sprint(in.Status.NodePorts) != fmt.Sprint(nodePorts) {
		return fmt.Errorf("status nodePorts %v, service %v", in.Status.NodePorts, nodePorts)
	}
	return nil
}

// converged waits until the intent's Service and status match the intent.
func converged(t *testing.T, ns, name string) (*v1alpha1.NetworkIntent, *corev1.Service) {
	t.Helper()
	ctx := context.Background()
	var in *v1alpha1.NetworkIntent
	var svc *corev1.Service
	testenv.Eventually(t, 20*time.Second, func() error {
		var err error
		if in, err = getIntent(ctx, ns, name); err != nil {
			return err
		}
		if svc, err = getService(ctx, ns, name); err != nil {
			return err
		}
		if err := checkService(svc, in); err != nil {
			return err
		}
		return checkStatus(in, svc)
	})
	return in, svc
}

func TestExposureProducesService(t *testing.T) {
	ns := testEnv.Namespace(t)
	for _, exposure := range []v1alpha1.Exposure{v1alpha1.ExposureClusterIP, v1alpha1.ExposureNodePort, v1alpha1.ExposureLoadBalancer, v1alpha1.ExposureExternalName} {
		t.Run(string(exposure), func(t *testing.T) {
			in := webIntent(ns, "web-"+strings.ToLower(string(exposure)), exposure)
			if err := k8sClient.Create(context.Background(), in); err != nil {
				t.Fatalf("create: %v", err)
			}
			converged(t, ns, in.Name)
		})
	}
}

func TestHeadlessAndRequestedNodePort(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	headless := webIntent(ns, "db", v1alpha1.ExposureClusterIP)
	headless.Spec.Headless = true
	np := webIntent(ns, "fixed", v1alpha1.ExposureNodePort)
	np.Spec.Ports = []v1alpha1.IntentPort{{Name: "http", Port: 80, NodePort: ptr.To[int32](31234)}}
	for _, in := range []*v1alpha1.NetworkIntent{headless, np} {
		if err := k8sClient.Create(ctx, in); err != nil {
			t.Fatalf("create %s: %v", in.Name, err)
		}
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		svc, err := getService(ctx, ns, "db")
		if err != nil {
			return err
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			return fmt.Errorf("clusterIP %q, want None", svc.Spec.ClusterIP)
		}
		in, err := getIntent(ctx, ns, "db")
		if err != nil {
			return err
		}
		return testenv.IntentCondition(in, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady)
	})
	testenv.Eventually(t, 20*time.Second, func() error {
		in, err := getIntent(ctx, ns, "fixed")
		if err != nil {
			return err
		}
		if len(in.Status.NodePorts) != 1 || in.Status.NodePorts[0].NodePort != 31234 {
			return fmt.Errorf("nodePorts %v", in.Status.NodePorts)
		}
		return nil
	})
}

func TestDriftIsRepairedAndForeignFieldsKept(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	_, svc := converged(t, ns, "web")

	// A person edits the ports by hand (an update, under kubectl's manager).
	svc.Spec.Ports[0].Port = 8081
	svc.Spec.Ports = svc.Spec.Ports[:1]
	if err := k8sClient.Update(ctx, svc, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatalf("hand edit: %v", err)
	}
	converged(t, ns, "web")

	// Another manager adds a label; it is not the operator's to remove.
	patch := []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"` + ns + `","labels":{"team":"shop"}}}`)
	if err := k8sClient.Patch(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}},
		client.RawPatch("application/apply-patch+yaml", patch), client.FieldOwner("team-tooling")); err != nil {
		t.Fatalf("foreign label: %v", err)
	}
	// Trigger a reconcile through the intent and wait for it to happen.
	resync(t, ns, "web", "touch", "1")
	_, svc = converged(t, ns, "web")
	if svc.Labels["team"] != "shop" {
		t.Fatalf("foreign label lost: %v", svc.Labels)
	}
}

func TestTypeChangesConverge(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	for _, exposure := range []v1alpha1.Exposure{v1alpha1.ExposureNodePort, v1alpha1.ExposureLoadBalancer, v1alpha1.ExposureExternalName, v1alpha1.ExposureClusterIP} {
		t.Run(string(exposure), func(t *testing.T) {
			testenv.Eventually(t, 10*time.Second, func() error {
				cur, err := getIntent(ctx, ns, "web")
				if err != nil {
					return err
				}
				setExposure(cur, exposure)
				if exposure == v1alpha1.ExposureClusterIP {
					cur.Spec.Ports = []v1alpha1.IntentPort{{Name: "http", Port: 80}}
				}
				return k8sClient.Update(ctx, cur)
			})
			converged(t, ns, "web")
		})
	}
}

func TestForeignServiceIsNeverTouched(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy", Labels: map[string]string{"owner": "someone"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "legacy"},
			Ports:    []corev1.ServicePort{{Name: "web", Port: 8080}},
		},
	}
	if err := k8sClient.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	in := webIntent(ns, "legacy", v1alpha1.ExposureNodePort)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		cur, err := getIntent(ctx, ns, "legacy")
		if err != nil {
			return err
		}
		if err := testenv.IntentCondition(cur, v1alpha1.IntentConditionServiceReady, metav1.ConditionFalse, v1alpha1.IntentReasonServiceConflict); err != nil {
			return err
		}
		return testenv.IntentCondition(cur, v1alpha1.IntentConditionReady, metav1.ConditionFalse, v1alpha1.IntentReasonServiceConflict)
	})
	svc, err := getService(ctx, ns, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	if svc.ResourceVersion != foreign.ResourceVersion || len(svc.OwnerReferences) != 0 {
		t.Fatalf("foreign service was changed: rv %s -> %s, owners %v", foreign.ResourceVersion, svc.ResourceVersion, svc.OwnerReferences)
	}

	if err := k8sClient.Delete(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, err := getIntent(ctx, ns, "legacy"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("intent still there: %v", err)
		}
		return nil
	})
	svc, err = getService(ctx, ns, "legacy")
	if err != nil {
		t.Fatalf("foreign service gone after deleting the intent: %v", err)
	}
	if svc.ResourceVersion != foreign.ResourceVersion {
		t.Fatalf("foreign service changed on intent deletion")
	}
}

func TestConflictClearsWhenForeignServiceGoes(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := k8sClient.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Create(ctx, webIntent(ns, "web", v1alpha1.ExposureClusterIP)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForCondition(t, k8sClient, client.ObjectKey{Namespace: ns, Name: "web"}, v1alpha1.IntentConditionServiceReady, metav1.ConditionFalse, v1alpha1.IntentReasonServiceConflict, 20*time.Second)
	if err := k8sClient.Delete(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
}

func TestDeletingIntentRemovesService(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureNodePort)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	if err := k8sClient.Delete(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, err := getService(ctx, ns, "web"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service still there: %v", err)
		}
		if _, err := getIntent(ctx, ns, "web"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("intent still there: %v", err)
		}
		return nil
	})
}

func TestSteadyStateWritesNothing(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureLoadBalancer)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	_, svc := converged(t, ns, "web")
	for i := range 5 {
		rv := resync(t, ns, "web", "resync", fmt.Sprint(i))
		cur, err := getService(ctx, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		if cur.ResourceVersion != svc.ResourceVersion {
			t.Fatalf("resync %d rewrote the service: resourceVersion %s -> %s", i, svc.ResourceVersion, cur.ResourceVersion)
		}
		got, err := getIntent(ctx, ns, "web")
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != rv {
			t.Fatalf("resync %d rewrote the intent's status: resourceVersion %s -> %s", i, rv, got.ResourceVersion)
		}
	}
}

// TestServiceNotWrittenAfterCreate watches every version of a new intent's
// Service, for every exposure: the create, and nothing more through
// reconciles that find nothing to change. A Service applied again right
// after its create (the API server's defaults taken for drift), or its
// created fields handed to the operator's apply entry before anything is to
// change, costs every intent a write. Then what the intent stops declaring
// (a port, a port's appProtocol) must leave the Service: the fields the
// create wrote are the apply's once there is a change to make.
func TestServiceNotWrittenAfterCreate(t *testing.T) {
	ctx := context.Background()
	wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, exposure := range []v1alpha1.Exposure{v1alpha1.ExposureClusterIP, v1alpha1.ExposureNodePort, v1alpha1.ExposureLoadBalancer, v1alpha1.ExposureExternalName} {
		t.Run(string(exposure), func(t *testing.T) {
			ns := testEnv.Namespace(t)
			w, err := wc.Watch(ctx, &corev1.ServiceList{}, client.InNamespace(ns))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			in := webIntent(ns, "web", exposure)
			if err := k8sClient.Create(ctx, in); err != nil {
				t.Fatal(err)
			}
			converged(t, ns, "web")
			for i := range 3 {
				resync(t, ns, "web", "resync", fmt.Sprint(i))
			}
			// Every write the reconciles made is at or below the live
			// version: read the watch up to it.
			live, err := getService(ctx, ns, "web")
			if err != nil {
				t.Fatal(err)
			}
			var versions []string
			deadline := time.After(10 * time.Second)
			for len(versions) == 0 || !strings.HasSuffix(versions[len(versions)-1], " "+live.ResourceVersion) {
				select {
				case ev, ok := <-w.ResultChan():
					if !ok {
						t.Fatalf("the watch ended after %v", versions)
					}
					if svc, ok := ev.Object.(*corev1.Service); ok {
						versions = append(versions, fmt.Sprintf("%s %s", ev.Type, svc.ResourceVersion))
					}
				case <-deadline:
					t.Fatalf("the watch did not reach version %s: %v", live.ResourceVersion, versions)
				}
			}
			t.Logf("%s: Service versions %v", exposure, versions)
			if len(versions) != 1 || !strings.HasPrefix(versions[0], "ADDED") {
				t.Errorf("Service versions %v, want the create alone", versions)
			}
			if exposure == v1alpha1.ExposureExternalName {
				return // no ports to drop
			}
			in, err = getIntent(ctx, ns, "web")
			if err != nil {
				t.Fatal(err)
			}
			in.Spec.Ports = in.Spec.Ports[:1]
			in.Spec.Ports[0].AppProtocol = nil
			if err := k8sClient.Update(ctx, in); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				svc, err := getService(ctx, ns, "web")
				if err != nil {
					return err
				}
				if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].AppProtocol != nil {
					return fmt.Errorf("Service ports %+v, want http alone, with no appProtocol", svc.Spec.Ports)
				}
				return nil
			})
		})
	}
}

// resync annotates the intent and waits until a reconcile has run since,
// returning the intent's resourceVersion after the annotation.
func resync(t *testing.T, ns, name, key, value string) string {
	t.Helper()
	before := reconcileCount(t)
	rv := annotate(t, ns, name, key, value)
	testenv.Eventually(t, 10*time.Second, func() error {
		if reconcileCount(t) <= before {
			return errors.New("no reconcile yet")
		}
		return nil
	})
	return rv
}

// annotate sets an annotation on the intent (a change that makes the
// reconciler run without changing the spec) and returns the new
// resourceVersion.
func annotate(t *testing.T, ns, name, key, value string) string {
	t.Helper()
	in, err := getIntent(context.Background(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(in.DeepCopy())
	if in.Annotations == nil {
		in.Annotations = map[string]string{}
	}
	in.Annotations[key] = value
	if err := k8sClient.Patch(context.Background(), in, patch); err != nil {
		t.Fatal(err)
	}
	return in.ResourceVersion
}

// reconcileCount is how many reconciles of intents have finished.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	return controllerReconciles(t, "networkintent")
}

// TestServiceLeftByEarlierIntentIsReplaced gives an intent a Service and a
// slice of its name that an earlier intent of that name left (controlled by
// a NetworkIntent "web" of another UID), as a deletion that raced the
// earlier intent's last reconcile can leave them where no garbage collector
// runs: the intent deletes them and makes its own, where a Service of
// anyone else is a conflict (TestForeignServiceIsNeverTouched).
func TestServiceLeftByEarlierIntentIsReplaced(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	earlier := metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: "web", UID: "earlier-uid", Controller: ptr.To(true)}
	left := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", OwnerReferences: []metav1.OwnerReference{earlier}},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if err := k8sClient.Create(ctx, left); err != nil {
		t.Fatal(err)
	}
	leftSlice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-earlier", OwnerReferences: []metav1.OwnerReference{earlier}, Labels: map[string]string{
			discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: v1alpha1.EndpointSliceManagedBy,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.77"}}},
	}
	if err := k8sClient.Create(ctx, leftSlice); err != nil {
		t.Fatal(err)
	}
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	testenv.Eventually(t, 10*time.Second, func() error {
		svc, err := getService(ctx, ns, "web")
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(svc); ref == nil || ref.UID != in.UID {
			return fmt.Errorf("the Service is controlled by %v, want the intent (uid %s)", ref, in.UID)
		}
		err = k8sClient.Get(ctx, client.ObjectKeyFromObject(leftSlice), &discoveryv1.EndpointSlice{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the slice the earlier intent left is still there (%v)", err)
		}
		return nil
	})
}
