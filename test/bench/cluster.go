package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/internal/manifests"
	"github.com/netintent/netintent/internal/testenv"
)

// serviceRange is the control plane's Service range, as make run's: room for
// the thousands of Services the benchmark makes.
const serviceRange = "10.96.0.0/12"

// controlPlane is kube-apiserver and etcd with the CRDs installed, and an
// admin's kubeconfig for the servers the benchmark runs.
type controlPlane struct {
	*testenv.ControlPlane
	client     client.Client
	kubeconfig string
}

// startControlPlane starts one with the CRDs and, when policy is set, the
// admission policy of config/admission.
func startControlPlane(root, work string, policy bool) (*controlPlane, error) {
	// The benchmark's own writes should not be what limits convergence.
	tcp, err := testenv.Start(testenv.Options{Root: root, ServiceRanges: []string{serviceRange}, QPS: 5000, Burst: 5000})
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{ControlPlane: tcp, client: tcp.Client}
	kc, err := cp.AdminKubeconfig("bench-admin")
	if err == nil {
		cp.kubeconfig, err = testenv.WriteKubeconfig(work, kc)
	}
	if err == nil && policy {
		// As a cluster has the operator installed, with the policy that
		// sets its finalizer on new intents.
		err = manifests.InstallAdmissionPolicy(context.Background(), cp.client, root)
	}
	if err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

// saveProfile writes kube-apiserver's CPU profile over the next d to path.
func (cp *controlPlane) saveProfile(ctx context.Context, d time.Duration, path string) error {
	cfg := rest.CopyConfig(cp.Config)
	cfg.Timeout = d + 30*time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").
		Param("seconds", strconv.Itoa(int(d.Seconds()))).DoRaw(ctx)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

func (cp *controlPlane) stop() {
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
}

// createAll creates objs with a few writers in parallel, as `kubectl apply`
// of a large file or a CD tool would.
func (cp *controlPlane) createAll(ctx context.Context, objs []client.Object) error {
	return forAll(objs, "creating", func(o client.Object) error { return cp.client.Create(ctx, o) })
}

// forAll calls write for each of objs with a few writers in parallel, and
// stops at the first error.
func forAll(objs []client.Object, what string, write func(client.Object) error) error {
	const writers = 16
	work := make(chan client.Object)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := write(o); err != nil {
					errs <- fmt.Errorf("%s %s/%s: %w", what, o.GetNamespace(), o.GetName(), err)
					for range work { // drain
					}
					return
				}
			}
		}()
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// Names of the DNS benchmark's objects, in namespace dnsNamespace.
const (
	dnsNamespace  = "bench"
	clusterIPs    = 100
	externalNames = 10
	headlessName  = "headless"
	headlessPods  = 3
	upstreamZone  = "example.org."
)

func clusterIPName(i int) string    { return fmt.Sprintf("svc-%03d", i) }
func externalNameName(i int) string { return fmt.Sprintf("ext-%02d", i) }
func externalTarget(i int) string   { return fmt.Sprintf("target-%02d.example.org", i) }

// dnsObjects are the Services and EndpointSlices both DNS servers answer
// about: plain Services, so that the operator's controllers have nothing to
// do while its DNS server is measured.
func dnsObjects() []client.Object {
	port := []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}
	var objs []client.Object
	for i := range clusterIPs {
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: dnsNamespace, Name: clusterIPName(i)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: port},
		})
	}
	for i := range externalNames {
		objs = append(objs, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: dnsNamespace, Name: externalNameName(i)},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: externalTarget(i)},
		})
	}
	objs = append(objs, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: dnsNamespace, Name: headlessName},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, Ports: port},
	})
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: dnsNamespace, Name: headlessName + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: headlessName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for i := range headlessPods {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.244.0.%d", i+10)},
			Hostname:   ptr.To(fmt.Sprintf("pod-%d", i)),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return append(objs, slice)
}

// queryMix is dnsperf's input: every ClusterIP name, every ExternalName
// (answered with the CNAME and the target's cached address), the headless
// name and its endpoints, SRV for a named port and for the headless
// Service, and names that do not exist.
func queryMix() string {
	zone := dnsNamespace + ".svc.cluster.local."
	var b []byte
	for i := range clusterIPs {
		b = fmt.Appendf(b, "%s.%s A\n", clusterIPName(i), zone)
	}
	for i := range externalNames {
		b = fmt.Appendf(b, "%s.%s A\n", externalNameName(i), zone)
	}
	b = fmt.Appendf(b, "%s.%s A\n", headlessName, zone)
	for i := range headlessPods {
		b = fmt.Appendf(b, "pod-%d.%s.%s A\n", i, headlessName, zone)
	}
	for i := range 5 {
		b = fmt.Appendf(b, "_http._tcp.%s.%s SRV\n", clusterIPName(i), zone)
	}
	b = fmt.Appendf(b, "_http._tcp.%s.%s SRV\n", headlessName, zone)
	for i := range 5 {
		b = fmt.Appendf(b, "missing-%d.%s A\n", i, zone)
	}
	return string(b)
}
