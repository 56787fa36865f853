package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
	"github.com/netintent/netintent/internal/health"
)

// endpointsGauge holds each intent's endpoint counts and reports them at
// scrape time: three numbers an intent, where a labelled gauge per intent
// and state would keep a few hundred bytes of label pairs for each.
var endpointsGauge = &endpointCounts{
	desc: prometheus.NewDesc("netintent_intent_endpoints",
		"Endpoints of each intent, by state (total, healthy, ready).",
		[]string{"namespace", "intent", "state"}, nil),
	counts: map[types.NamespacedName][3]int32{},
}

// sliceWriteDuration times the operator's EndpointSlice writes, the last
// step between a backend's death and its leaving traffic.
var sliceWriteDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "netintent_endpointslice_write_duration_seconds",
	Help:    "Time of each EndpointSlice write to the API server, client-side rate limit included, by verb (create, update, delete).",
	Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
}, []string{"verb"})

func init() {
	metrics.Registry.MustRegister(endpointsGauge, ejectionsDetected, ejectionsEnforced, sliceWriteDuration)
}

// timeSliceWrite runs write and observes its duration under verb.
func timeSliceWrite(verb string, write func() error) error {
	start := time.Now()
	err := write()
	sliceWriteDuration.WithLabelValues(verb).Observe(time.Since(start).Seconds())
	return err
}

// endpointCounts is a prometheus.Collector of the intents' endpoint counts.
type endpointCounts struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	counts map[types.NamespacedName][3]int32 // total, healthy, ready
}

var endpointStates = [3]string{"total", "healthy", "ready"}

func (e *endpointCounts) set(key types.NamespacedName, total, healthy, ready int) {
	e.mu.Lock()
	e.counts[key] = [3]int32{int32(total), int32(healthy), int32(ready)}
	e.mu.Unlock()
}

func (e *endpointCounts) forget(key types.NamespacedName) {
	e.mu.Lock()
	delete(e.counts, key)
	e.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (e *endpointCounts) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

// Collect implements prometheus.Collector.
func (e *endpointCounts) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key, c := range e.counts {
		for i, state := range endpointStates {
			ch <- prometheus.MustNewConstMetric(e.desc, prometheus.GaugeValue, float64(c[i]), key.Namespace, key.Name, state)
		}
	}
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;delete

// reconcileEndpoints publishes the intent's healthy backends in the
// Service's EndpointSlices and reports them in status.
func (r *IntentReconciler) reconcileEndpoints(ctx context.Context, s *intentScope) (ctrl.Result, error) {
	in := s.in
	key := client.ObjectKeyFromObject(in)
	if s.foreign {
		// Someone else's Service: slices labelled with its name would
		// feed its consumers our endpoints. Withdraw them, and probe
		// nothing.
		r.Prober.Remove(key)
		in.Status.Endpoints = nil
		in.Status.ExternalName = nil
		meta.RemoveStatusCondition(&in.Status.Conditions, v1alpha1.IntentConditionEndpointsHealthy)
		forgetEndpointMetrics(in)
		return ctrl.Result{}, r.deleteOwnedSlices(ctx, in)
	}
	if in.Spec.Exposure == v1alpha1.ExposureExternalName {
		// Targets are health-checked by reconcileTargets; there are no
		// endpoints to publish.
		in.Status.Endpoints = nil
		forgetEndpointMetrics(in)
		return ctrl.Result{}, r.deleteOwnedSlices(ctx, in)
	}

	cands, excluded, err := r.candidates(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	hc := in.Spec.HealthCheck
	if hc == nil {
		hc = &v1alpha1.HealthCheck{}
	}
	existing, err := r.ownedSlices(ctx, in)
	if err != nil {
		return ctrl.Result{}, err
	}
	states := r.setProbes(key, hc, cands, publishedOutOfTraffic(existing))
	floor := ptr.Deref(hc.MinHealthyPercent, 0)
	judged := endpoints.Judge(cands, func(c endpoints.Candidate) *endpoints.ProbeResult {
		if states == nil {
			return nil
		}
		st, ok := states[c.Address.String()]
		if !ok {
			return &endpoints.ProbeResult{Healthy: true} // not probed yet
		}
		return &endpoints.ProbeResult{Healthy: st.Healthy, Err: st.Failure, Forbidden: st.Forbidden, Changed: st.LastChange}
	}, hc.IgnorePodReadiness, floor)
	if hc.ReadinessGate && states != nil {
		if err := r.writeReadinessGates(ctx, s.pods, cands, states, judged.BelowFloor); err != nil {
			return ctrl.Result{}, err
		}
	}
	verdict := judged
	observe := hc.Mode == v1alpha1.HealthCheckObserve && states != nil
	if observe {
		// Traffic follows readiness alone; the checks' verdict is only
		// reported.
		verdict = endpoints.Judge(cands, func(endpoints.Candidate) *endpoints.ProbeResult { return nil }, hc.IgnorePodReadiness, floor)
	}
	observed := r.countEjections(in, judged, verdict, observe)

	before := publishedReady(existing)
	hinted := endpoints.Hints(in.Spec.TrafficDistribution, verdict.Endpoints)
	plan := endpoints.Reconcile(endpoints.Target{
		Namespace:   in.Namespace,
		ServiceName: in.Name,
		ManagedBy:   v1alpha1.EndpointSliceManagedBy,
		Owner:       *metav1.NewControllerRef(in, v1alpha1.GroupVersion.WithKind("NetworkIntent")),
		Labels:      map[string]string{v1alpha1.LabelIntent: in.Name},
		Headless:    in.Spec.Headless,
		Now:         time.Now(),
		Families:    addressTypes(s.service),
	}, hinted.Endpoints, existing)
	unseen, err := r.applySlices(ctx, in, plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.recordFlips(in, before, verdict.Endpoints)
	if hinted.Withheld != "" && publishedHints(existing) {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, "ZoneHintsWithheld", "Publish",
			"Zone hints taken off the endpoints, every client now spreads over all of them: %s", hinted.Withheld)
	}
	r.setEndpointsStatus(in, verdict, excluded, observed, hinted.Withheld)
	if unseen {
		// The cache had not seen a slice we wrote; its event may have
		// come already, so look again soon.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// addressTypes are the EndpointSlice address types of the Service's IP
// families; none for a Service not seen yet.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	if svc == nil {
		return nil
	}
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		out = append(out, discoveryv1.AddressType(f))
	}
	return out
}

// forgetEndpointMetrics drops the intent's endpoint gauges and ejection
// counters.
func forgetEndpointMetrics(in *v1alpha1.NetworkIntent) {
	endpointsGauge.forget(client.ObjectKeyFromObject(in))
	ejectionsDetected.DeleteLabelValues(in.Namespace, in.Name)
	ejectionsEnforced.DeleteLabelValues(in.Namespace, in.Name)
}

// Ejections, as Envoy's outlier detection counts them: backends the checks
// judged out of traffic (detected), and of those, the ones taken out
// (enforced: not in mode Observe, nor kept in by the floor).
var (
	ejectionsDetected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_endpoint_ejections_detected_total",
		Help: "Backends that started failing their active checks (in either healthCheck.mode).",
	}, []string{"namespace", "intent"})
	ejectionsEnforced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netintent_endpoint_ejections_enforced_total",
		Help: "Backends that started failing their active checks and were taken out of traffic for it.",
	}, []string{"namespace", "intent"})
)

// ejections are the backends of an intent that its checks judge out of
// traffic, and those of them that are out of traffic for it.
type ejections struct{ checked, enforced map[string]bool }

// countEjections compares the backends the checks judge out of traffic
// with those of the last reconcile: it counts the new ones as detected, and
// the ones newly taken out of traffic for it as enforced (so that switching
// from mode Observe to Enforce counts what it takes out); in mode Observe
// it records events for what would change, and returns the backends the
// checks would take out that stay in traffic.
func (r *IntentReconciler) countEjections(in *v1alpha1.NetworkIntent, judged, published endpoints.Verdict, observe bool) []v1alpha1.UnhealthyEndpoint {
	key := client.ObjectKeyFromObject(in)
	ready := map[string]bool{}
	for _, ep := range published.Endpoints {
		ready[ep.Address.Unmap().String()] = ep.Ready
	}
	var now ejections // maps made at the first entry: most intents have none
	for _, u := range judged.Unhealthy {
		if u.Reason == v1alpha1.EndpointReasonProbeFailed || u.Reason == v1alpha1.EndpointReasonForbiddenTarget {
			if now.checked == nil {
				now.checked = map[string]bool{}
			}
			now.checked[u.Address] = true
			if !observe && !ready[u.Address] {
				if now.enforced == nil {
					now.enforced = map[string]bool{}
				}
				now.enforced[u.Address] = true
			}
		}
	}
	var before ejections
	if len(now.checked) > 0 {
		if v, ok := r.checkedOut.Swap(key, now); ok {
			before = v.(ejections)
		}
	} else if v, ok := r.checkedOut.LoadAndDelete(key); ok {
		// None kept for an intent with none, as none kept reads as none.
		before = v.(ejections)
	}
	var detected, rejoined []string
	for a := range now.checked {
		if !before.checked[a] {
			detected = append(detected, a)
			ejectionsDetected.WithLabelValues(in.Namespace, in.Name).Inc()
		}
		if now.enforced[a] && !before.enforced[a] {
			ejectionsEnforced.WithLabelValues(in.Namespace, in.Name).Inc()
		}
	}
	for a := range before.checked {
		if !now.checked[a] {
			rejoined = append(rejoined, a)
		}
	}
	if !observe {
		return nil
	}
	slices.Sort(detected)
	slices.Sort(rejoined)
	if len(detected) > 0 {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, "EndpointWouldBeUnhealthy", "Observe", "%s would leave traffic in healthCheck.mode Enforce", listEndpoints(detected))
	}
	if len(rejoined) > 0 {
		r.Recorder.Eventf(in, nil, corev1.EventTypeNormal, "EndpointWouldBeHealthy", "Observe", "%s would rejoin traffic in healthCheck.mode Enforce", listEndpoints(rejoined))
	}
	var observed []v1alpha1.UnhealthyEndpoint
	for _, u := range judged.Unhealthy {
		if now.checked[u.Address] && ready[u.Address] {
			observed = append(observed, u)
		}
	}
	return observed
}

// candidates are the intent's backends of the Service's IP families, and
// those left out with why. Without a Service seen yet, none is of its
// families (its event brings the intent back).
func (r *IntentReconciler) candidates(ctx context.Context, s *intentScope) ([]endpoints.Candidate, []v1alpha1.UnhealthyEndpoint, error) {
	cands, excluded, pods, err := r.allCandidates(ctx, s.in)
	if err != nil {
		return nil, nil, err
	}
	s.pods = pods
	var families []corev1.IPFamily
	if s.service != nil {
		families = s.service.Spec.IPFamilies
	}
	served, otherFamily := endpoints.ServedFamilies(cands, families)
	return served, append(excluded, otherFamily...), nil
}

func (r *IntentReconciler) allCandidates(ctx context.Context, in *v1alpha1.NetworkIntent) ([]endpoints.Candidate, []v1alpha1.UnhealthyEndpoint, []corev1.Pod, error) {
	cands, excluded := endpoints.FromBackends(in)
	if in.Spec.Selector == nil {
		return cands, excluded, nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(in.Spec.Selector)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("selector: %w", err)
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(in.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	zones := map[string]string{}
	for _, p := range pods.Items {
		if name := p.Spec.NodeName; name != "" {
			if _, seen := zones[name]; !seen {
				zones[name] = r.nodeZone(ctx, name)
			}
		}
	}
	podCands, podExcluded := endpoints.FromPods(in, pods.Items, zones)
	return append(cands, podCands...), append(excluded, podExcluded...), pods.Items, nil
}

// nodeZone is the node's zone label, or "" when the node or label is absent.
func (r *IntentReconciler) nodeZone(ctx context.Context, name string) string {
	node := &metav1.PartialObjectMetadata{}
	node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
		return ""
	}
	return node.Labels[corev1.LabelTopologyZone]
}

// setProbes hands the candidates to the prober and returns their states, or
// nil when the intent has no active probe.
//
// A target new to the prober (after a restart, on becoming leader, or when
// its probe changed) starts from what the slices publish, so that no write
// puts a backend back into traffic before a probe has passed. One published
// out of traffic although its pod is ready (or readiness does not count) was
// held out by its probe: it starts unhealthy and needs healthyThreshold
// passes. One published out of traffic whose pod is not ready may have been
// held out by either: it needs one pass. With the readiness gate, a pod's
// target whose gate is not True yet needs one pass too, so that the gate
// turns True on a passing probe and not on the benefit of the doubt. Any
// other starts healthy.
func (r *IntentReconciler) setProbes(key types.NamespacedName, hc *v1alpha1.HealthCheck, cands []endpoints.Candidate, outOfTraffic map[string]bool) map[string]health.TargetState {
	if (hc.HTTP == nil && hc.TCP == nil && hc.GRPC == nil) || len(cands) == 0 {
		r.Prober.Remove(key)
		return nil
	}
	targets := make([]health.Target, 0, len(cands))
	for _, c := range cands {
		port := int32(0)
		if len(c.Ports) > 0 {
			port = c.Ports[0].Number
		}
		spec, _ := probeSpec(hc.ProbeHandler, hc, port)
		tg := health.Target{ID: c.Address.String(), Address: c.Address.String(), Spec: spec}
		if outOfTraffic[tg.ID] {
			tg.StartUnhealthy = c.PodReady || hc.IgnorePodReadiness
			tg.StartUnproven = !tg.StartUnhealthy
		}
		if hc.ReadinessGate && c.Pod != "" && !c.BackendHealthy && !tg.StartUnhealthy {
			tg.StartUnproven = true
		}
		targets = append(targets, tg)
	}
	r.Prober.Set(key, targets)
	return r.Prober.Status(key)
}

// sliceIntentIndex indexes the cached EndpointSlices that an intent
// controls by the first characters of the intent's UID (uidBucket), so
// that a reconcile reads its own slices and those of the few intents that
// share the bucket, not every slice of the namespace. It is an index of the
// informer's own (a UID is unique across namespaces), not a field index of
// the manager's cache, which keeps two keys a slice (one for its namespace
// and one for all), each with a set of its own. An index keeps a set for
// each of its keys, which takes some 200 bytes however few it holds: one
// key an intent took that much an intent, 256 keys take it 256 times,
// whatever the number of intents (the bucket's other slices are told apart
// by their controller before they are read).
const sliceIntentIndex = "netintent.controller.uid"

// uidBucket is the key of sliceIntentIndex for an intent's UID: its first
// two characters, one of 256 for the random hex of the UIDs the API server
// gives.
func uidBucket(uid types.UID) string {
	if len(uid) < 2 {
		return string(uid)
	}
	return string(uid[:2])
}

// intentBucketOf is sliceIntentIndex's function: the bucket of the intent
// that controls obj, if one does.
func intentBucketOf(obj any) ([]string, error) {
	if m, ok := obj.(metav1.Object); ok {
		if ref := controllingIntent(m); ref != nil {
			return []string{uidBucket(ref.UID)}, nil
		}
	}
	return nil, nil
}

// indexSlicesByIntent registers sliceIntentIndex with mgr's slice informer
// and returns the informer's store, which the index serves.
func indexSlicesByIntent(ctx context.Context, mgr ctrl.Manager) (toolscache.Indexer, error) {
	shared, err := sharedInformer(ctx, mgr, &discoveryv1.EndpointSlice{})
	if err != nil {
		return nil, fmt.Errorf("indexing endpoint slices by intent: %w", err)
	}
	if err := shared.AddIndexers(toolscache.Indexers{sliceIntentIndex: intentBucketOf}); err != nil {
		return nil, fmt.Errorf("indexing endpoint slices by intent: %w", err)
	}
	return shared.GetIndexer(), nil
}

// sharedInformer is the informer of mgr's cache for obj's kind, as the
// client-go informer whose store the reconcilers read directly.
func sharedInformer(ctx context.Context, mgr ctrl.Manager, obj client.Object) (toolscache.SharedIndexInformer, error) {
	inf, err := mgr.GetCache().GetInformer(ctx, obj)
	if err != nil {
		return nil, err
	}
	shared, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("the cache's informer is a %T", inf)
	}
	return shared, nil
}

// ownedSlices is listOwnedSlices from the cache, through its index (from
// r.Client when there is none), with this replica's own writes the cache
// has not seen yet in place of what they replaced.
func (r *IntentReconciler) ownedSlices(ctx context.Context, in *v1alpha1.NetworkIntent) ([]discoveryv1.EndpointSlice, error) {
	cached, err := r.cachedOwnedSlices(ctx, in)
	if err != nil {
		return nil, err
	}
	return r.slicesWritten.overlay(in.UID, cached), nil
}

func (r *IntentReconciler) cachedOwnedSlices(ctx context.Context, in *v1alpha1.NetworkIntent) ([]discoveryv1.EndpointSlice, error) {
	if r.sliceIndex == nil {
		return listOwnedSlices(ctx, r.Client, in)
	}
	objs, err := r.sliceIndex.ByIndex(sliceIntentIndex, uidBucket(in.UID))
	if err != nil {
		return nil, fmt.Errorf("listing endpoint slices: %w", err)
	}
	var cached []discoveryv1.EndpointSlice
	for _, obj := range objs {
		o, ok := obj.(client.Object)
		if !ok || o.GetNamespace() != in.Namespace {
			continue
		}
		// Another intent's of the bucket: most are told by their
		// Service's name, read without decoding anything; the owner
		// references of a compact form are decoded.
		if l, ok := o.(labelReader); ok {
			if name, _ := l.Label(discoveryv1.LabelServiceName); name != in.Name {
				continue
			}
		}
		if ref := controllingIntent(o); ref == nil || ref.UID != in.UID {
			continue
		}
		// A copy of the cache's own, which must not change; a compact
		// form's copy is the slice read back (see trimSlice).
		if s, ok := o.DeepCopyObject().(*discoveryv1.EndpointSlice); ok && isOwnedSlice(s, in) {
			cached = append(cached, *s)
		}
	}
	return cached, nil
}

// labelReader reads one label of an object without making its map of
// labels (a compact form).
type labelReader interface {
	Label(key string) (string, bool)
}

// isOwnedSlice reports whether s is one of the slices listOwnedSlices
// lists for in.
func isOwnedSlice(s *discoveryv1.EndpointSlice, in *v1alpha1.NetworkIntent) bool {
	return s.Namespace == in.Namespace &&
		s.Labels[discoveryv1.LabelServiceName] == in.Name &&
		s.Labels[discoveryv1.LabelManagedBy] == v1alpha1.EndpointSliceManagedBy &&
		metav1.IsControlledBy(s, in)
}

// listOwnedSlices lists the EndpointSlices the intent controls: its
// Service's, managed by netintent, and with the intent as controller.
func listOwnedSlices(ctx context.Context, reader client.Reader, in *v1alpha1.NetworkIntent) ([]discoveryv1.EndpointSlice, error) {
	list := &discoveryv1.EndpointSliceList{}
	if err := reader.List(ctx, list, client.InNamespace(in.Namespace), client.MatchingLabels{
		discoveryv1.LabelServiceName: in.Name,
		discoveryv1.LabelManagedBy:   v1alpha1.EndpointSliceManagedBy,
	}); err != nil {
		return nil, fmt.Errorf("listing endpoint slices: %w", err)
	}
	owned := list.Items[:0]
	for _, s := range list.Items {
		if isOwnedSlice(&s, in) {
			owned = append(owned, s)
		}
	}
	return owned, nil
}

// applySlices writes the plan, through the slice writer, and remembers
// each write until the cache shows it (see sliceWrites). A slice to create
// that exists already is one the cache has not seen yet: it is skipped,
// and unseen says so.
func (r *IntentReconciler) applySlices(ctx context.Context, in *v1alpha1.NetworkIntent, plan endpoints.Plan) (unseen bool, err error) {
	w := r.sliceWriter()
	for _, s := range plan.Create {
		err := timeSliceWrite("create", func() error { return w.Create(ctx, s) })
		switch {
		case apierrors.IsAlreadyExists(err):
			unseen = true
		case err != nil:
			return unseen, fmt.Errorf("creating endpoint slice %s: %w", s.Name, err)
		default:
			r.slicesWritten.created(in.UID, s)
		}
	}
	for _, s := range plan.Update {
		base := s.ResourceVersion
		if err := timeSliceWrite("update", func() error { return w.Update(ctx, s, client.FieldOwner(v1alpha1.FieldOwner)) }); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				// Someone else's write: the next reconcile builds on it.
				r.slicesWritten.forgetSlice(in.UID, s.Name)
			}
			return unseen, fmt.Errorf("updating endpoint slice %s: %w", s.Name, err)
		}
		r.slicesWritten.updated(in.UID, base, s)
	}
	for _, s := range plan.Delete {
		if err := timeSliceWrite("delete", func() error { return w.Delete(ctx, s) }); client.IgnoreNotFound(err) != nil {
			return unseen, fmt.Errorf("deleting endpoint slice %s: %w", s.Name, err)
		}
		r.slicesWritten.deleted(in.UID, s.Name, s.ResourceVersion)
	}
	return unseen, nil
}

// sliceWriter is the client that writes EndpointSlices: SliceWriter, or
// Client when none is given.
func (r *IntentReconciler) sliceWriter() client.Writer {
	if r.SliceWriter != nil {
		return r.SliceWriter
	}
	return r.Client
}

// publishedReady is the ready state of each address in the slices have.
func publishedReady(have []discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range have {
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) > 0 {
				out[ep.Addresses[0]] = ptr.Deref(ep.Conditions.Ready, false)
			}
		}
	}
	return out
}

// publishedHints reports whether an endpoint of the slices carries a hint.
func publishedHints(have []discoveryv1.EndpointSlice) bool {
	for _, s := range have {
		for _, ep := range s.Endpoints {
			if ep.Hints != nil {
				return true
			}
		}
	}
	return false
}

// publishedOutOfTraffic is the addresses the slices publish not ready and
// not terminating: out of traffic for their health.
func publishedOutOfTraffic(have []discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range have {
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) > 0 && !ptr.Deref(ep.Conditions.Ready, false) && !ptr.Deref(ep.Conditions.Terminating, false) {
				out[ep.Addresses[0]] = true
			}
		}
	}
	return out
}

// recordFlips emits one event for the endpoints that left traffic since the
// slices were last written and one for those that rejoined it: a bulk
// failure is one event per intent, not one per endpoint.
func (r *IntentReconciler) recordFlips(in *v1alpha1.NetworkIntent, before map[string]bool, eps []endpoints.Endpoint) {
	var left, rejoined []string
	for _, ep := range eps {
		addr := ep.Address.Unmap().String()
		was, known := before[addr]
		switch {
		case known && was && !ep.Ready && !ep.Terminating:
			left = append(left, addr)
		case known && !was && ep.Ready:
			rejoined = append(rejoined, addr)
		}
	}
	if len(left) > 0 {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, "EndpointUnhealthy", "Publish", "%s left traffic", listEndpoints(left))
	}
	if len(rejoined) > 0 {
		r.Recorder.Eventf(in, nil, corev1.EventTypeNormal, "EndpointHealthy", "Publish", "%s rejoined traffic", listEndpoints(rejoined))
	}
}

// eventAddresses is how many addresses an event names; the rest are
// counted.
const eventAddresses = 10

// listEndpoints names the endpoints of an event: "Endpoint 10.0.0.1",
// "3 endpoints (10.0.0.1, 10.0.0.2, 10.0.0.3)", with at most
// eventAddresses named and the rest counted.
func listEndpoints(addrs []string) string {
	if len(addrs) == 1 {
		return "Endpoint " + addrs[0]
	}
	named := addrs
	more := ""
	if len(addrs) > eventAddresses {
		named = addrs[:eventAddresses]
		more = fmt.Sprintf(" and %d more", len(addrs)-eventAddresses)
	}
	return fmt.Sprintf("%d endpoints (%s%s)", len(addrs), strings.Join(named, ", "), more)
}

// setEndpointsStatus writes the verdict's report in the intent's status
// and metrics, with an event when the floor starts to hold. hintsWithheld
// is why the slices carry no zone hints although the intent asks for a
// trafficDistribution.
func (r *IntentReconciler) setEndpointsStatus(in *v1alpha1.NetworkIntent, v endpoints.Verdict, excluded, observed []v1alpha1.UnhealthyEndpoint, hintsWithheld string) {
	floor := int32(0)
	if hc := in.Spec.HealthCheck; hc != nil {
		floor = ptr.Deref(hc.MinHealthyPercent, 0)
	}
	rep := endpoints.Summarize(v, excluded, floor, in.Generation)
	if len(observed) > 0 {
		rep.Status.ObservedCount = int32(len(observed))
		rep.Status.Observed = observed[:min(len(observed), endpoints.MaxUnhealthyListed)]
		rep.Condition.Message += fmt.Sprintf("; healthCheck.mode Observe: %d would be out of traffic in mode Enforce (see status.endpoints.observed)", len(observed))
	}
	if hintsWithheld != "" {
		rep.Condition.Message += "; trafficDistribution: zone hints withheld, every client spreads over all endpoints, because " + hintsWithheld
	}
	in.Status.Endpoints = rep.Status
	endpointsGauge.set(client.ObjectKeyFromObject(in), v.Total, v.Healthy, rep.Ready)
	if rep.Condition.Reason == v1alpha1.IntentReasonBelowHealthyFloor && !conditionIs(in, v1alpha1.IntentConditionEndpointsHealthy, v1alpha1.IntentReasonBelowHealthyFloor) {
		r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, v1alpha1.IntentReasonBelowHealthyFloor, "Publish",
			"Only %d of %d endpoints are healthy, below the %d%% floor: publishing every pod-ready endpoint", v.Healthy, v.Total, floor)
	}
	meta.SetStatusCondition(&in.Status.Conditions, rep.Condition)
}
