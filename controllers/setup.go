package controllers

import (
	"context"
	"os"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/compact"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/record"
)

// Options configures the reconcilers.
type Options struct {
	// Prober runs active health checks; it must also be added to the
	// manager. It runs on every replica, fed by a ProbeTargetReconciler,
	// so that a new leader starts from what it has observed. Nil: a
	// default prober is made and added.
	Prober *health.Prober
	// IntentWorkers is how many intents are reconciled at once (0: one).
	IntentWorkers int
	// SliceWriter writes EndpointSlices (nil: the manager's client); see
	// IntentReconciler.SliceWriter.
	SliceWriter client.Writer
}

// SetupWithManager registers every netintent reconciler with the manager.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Prober == nil {
		opts.Prober = health.NewProber(health.Options{})
		if err := mgr.Add(opts.Prober); err != nil {
			return err
		}
	}
	recorder := record.New(record.Config{
		Client:     mgr.GetClient(),
		Scheme:     mgr.GetScheme(),
		Controller: eventController,
		Instance:   eventController + "-" + hostname(),
		Log:        mgr.GetLogger().WithName("events"),
	})
	if err := mgr.Add(recorder); err != nil {
		return err
	}
	if err := indexPodsByNode(context.Background(), mgr); err != nil {
		return err
	}
	if err := (&IntentReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    recorder,
		Prober:      opts.Prober,
		Workers:     opts.IntentWorkers,
		SliceWriter: opts.SliceWriter,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&ReadinessGateReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return err
	}
	// LoadBalancer addresses from AddressPools: the two reconcilers share
	// one allocator.
	pools := newAddressPools(mgr.GetClient(), mgr.GetAPIReader())
	if err := (&LoadBalancerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,
		pools:     pools,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&AddressPoolReconciler{
		Client:   mgr.GetClient(),
		Recorder: recorder,
		pools:    pools,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return nil
}

// eventController is the reportingController of the operator's events.
const eventController = "netintent"

// hostname names this replica in its events, as client-go's recorder does.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// CacheOptions trims what the manager's cache keeps of each object: the
// operator's memory grows with the cluster, so it keeps only what it reads
// (see trimIntent, trimPod, trimService and trimSlice).
// managedFields are a good part of every cached object, and only what the
// operator owns in the intents' Services is read (to compare what it
// applied), which the cache keeps with the Service (trimService);
// nothing reads the copy of an object that a client-side `kubectl apply`
// keeps in an annotation, and the operator writes the objects it caches
// (intents, AddressPools) only with patches, which leave out what the cache
// does not hold.
func CacheOptions() cache.Options {
	return cache.Options{
		DefaultTransform: trim,
		ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.NetworkIntent{}:    {Transform: trimIntent},
			&corev1.Service{}:            {Transform: trimService},
			&corev1.Pod{}:                {Transform: trimPod},
			&discoveryv1.EndpointSlice{}: {Transform: trimSlice},
		},
	}
}

// trimPod keeps of a pod what its endpoints are made of (endpoints.FromPods):
// labels, name and UID, the deletion mark, node, hostname and subdomain, the
// containers' ports, phase, addresses and conditions; and its readiness
// gates, for the ReadinessGateReconciler. A pod's spec and
// container statuses are most of its size, and every pod of the cluster is
// cached.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return trim(obj)
	}
	containers := make([]corev1.Container, len(pod.Spec.Containers))
	for i, c := range pod.Spec.Containers {
		containers[i] = corev1.Container{Name: c.Name, Ports: c.Ports}
	}
	pod.Spec = corev1.PodSpec{
		NodeName:       pod.Spec.NodeName,
		Hostname:       pod.Spec.Hostname,
		Subdomain:      pod.Spec.Subdomain,
		Containers:     containers,
		ReadinessGates: pod.Spec.ReadinessGates,
	}
	pod.Status = corev1.PodStatus{
		Phase:      pod.Status.Phase,
		PodIP:      pod.Status.PodIP,
		PodIPs:     pod.Status.PodIPs,
		Conditions: pod.Status.Conditions,
	}
	pod.Annotations = nil
	return trim(pod)
}

// trim drops an object's managedFields and last-applied annotation, and
// replaces the strings every object of its kind repeats with one shared
// copy (internObject).
func trim(obj any) (any, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return obj, nil // not an object (say a tombstone): nothing to trim
	}
	if m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	if a := m.GetAnnotations(); a != nil {
		if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
			delete(a, corev1.LastAppliedConfigAnnotation)
			if len(a) == 0 {
				a = nil // an empty map keeps the room its entry took
			}
			m.SetAnnotations(a)
		}
	}
	internObject(obj)
	return obj, nil
}

// trimIntent is the intents' cache transform: every intent is trimmed and
// kept in its compact form (compact.Intent: its spec and status encoded
// and compressed, its exposure and selector apart), which its readers turn
// back into a NetworkIntent. The reconcilers read one intent at a time;
// what reads many at once (the pod and node mappers, the readiness gate)
// goes by the selector (intentsSelectingLabels) or the exposure
// (exposureOf), which the form holds as they are.
func trimIntent(obj any) (any, error) {
	in, ok := obj.(*v1alpha1.NetworkIntent)
	if !ok {
		// An intent in compact form already (an informer may pass what
		// it holds through its transform again), or not an intent.
		return obj, nil
	}
	return trimToForm(in, compact.FromIntent)
}

// trimToForm trims obj and makes it into its compact form, or keeps it
// whole (trimmed) when it cannot be (it could not be encoded).
func trimToForm[T any, F any](obj T, toForm func(T) (F, error)) (any, error) {
	if _, err := trim(obj); err != nil {
		return nil, err
	}
	c, err := toForm(obj)
	if err != nil {
		return obj, nil
	}
	return c, nil
}

// trimService is the Services' cache transform: every Service is trimmed
// and kept in its compact form (compact.Service: its spec and status
// encoded, its labels and annotations in one array), which its readers
// turn back into a Service. Of an intent's Service, which the operator
// compares with what it applied, what the operator owns is first read
// from the managedFields and kept with it (ownedShapeOf). Should that
// fail, the Service is kept whole with its managedFields, for the operator
// to read them itself. Nothing reads a cached Service's labels (the DNS
// server, the controllers and the address pools go by name, owner, type,
// annotations and namespace labels; what the operator owns in its own
// Services' labels is in what is kept with them), so they go too, but
// with the managedFields that need them. Like every transform it is
// idempotent: a Service held already is left as it is (an informer may
// pass what it holds through its transform again; on a restart's first
// list, it did).
func trimService(obj any) (any, error) {
	if held, ok := obj.(*compact.Service); ok {
		return held, nil
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return trim(obj)
	}
	var owned *unique.Handle[string]
	if controllingIntent(svc) != nil && len(svc.ManagedFields) > 0 {
		shape, ok := ownedShapeOf(svc)
		if !ok {
			internObject(svc)
			return svc, nil
		}
		owned = &shape
	}
	svc.Labels = nil
	if _, err := trim(svc); err != nil {
		return nil, err
	}
	c, err := compact.FromService(svc)
	if err != nil {
		// Kept whole, without what it owns: ownedFieldsOf reads the API
		// server's copy.
		return svc, nil
	}
	if owned != nil {
		c.Keep(*owned)
	}
	return c, nil
}

// trimSlice is the EndpointSlices' cache transform: the cache keeps every
// slice in its compact form (compact.EndpointSlice, with its labels and
// annotations in one array instead of two maps), which its readers turn
// back into an EndpointSlice. An intent's slices are compared with what
// the operator writes and kept whole (but for managedFields). Any other
// slice is read only by the DNS server, which needs of it its labels (the
// Service), address type and ports and each endpoint's addresses,
// conditions and hostname; the rest goes: the slice's owners and
// annotations, and each endpoint's target reference, node, zone and hints.
// Most slices of a cluster are another controller's, and a target
// reference is most of an endpoint's size.
func trimSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		// A slice in compact form already (an informer may pass what it
		// holds through its transform again), or not a slice.
		return obj, nil
	}
	if controllingIntent(s) == nil {
		s.OwnerReferences, s.Annotations = nil, nil
		for i := range s.Endpoints {
			e := &s.Endpoints[i]
			e.TargetRef, e.NodeName, e.Zone, e.Hints, e.DeprecatedTopology = nil, nil, nil, nil, nil
		}
	}
	return trimToForm(s, compact.FromEndpointSlice)
}

// controllingIntent is the reference to the NetworkIntent that controls
// obj, or nil when none does. It is the one check of "controlled by an
// intent" for objects read without their intent; the reference is obj's
// own, not a copy.
func controllingIntent(obj metav1.Object) *metav1.OwnerReference {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || ref.Kind != "NetworkIntent" || !strings.HasPrefix(ref.APIVersion, v1alpha1.GroupVersion.Group+"/") {
		return nil
	}
	return ref
}
