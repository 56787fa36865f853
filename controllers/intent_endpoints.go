package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
	"github.com/netintent/netintent/internal/health"
	"github.com/netintent/netintent/internal/intent"
)

// Prober is the active health checker behind the endpoints: targets are set
// per intent, and only a flip of a target's health asks for a reconcile.
type Prober interface {
	Set(key string, targets []health.Target)
	Remove(key string)
	Status(key string) map[string]health.TargetState
}

// maxUnhealthyListed bounds the unhealthy endpoints named in status.
const maxUnhealthyListed = 10

var endpointsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "netintent_intent_endpoints",
	Help: "Endpoints of each intent, by state (total, healthy, ready).",
}, []string{"namespace", "intent", "state"})

func init() {
	metrics.Registry.MustRegister(endpointsGauge)
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;delete

// reconcileEndpoints publishes the intent's healthy backends in the
// Service's EndpointSlices and reports them in status.
func (r *IntentReconciler) reconcileEndpoints(ctx context.Context, in *v1alpha1.NetworkIntent) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(in).String()
	if !serviceIsOurs(in) {
		// Someone else's Service: slices labelled with its name would
		// feed its consumers our endpoints. Withdraw them, and probe
		// nothing.
		r.Prober.Remove(key)
		in.Status.Endpoints = nil
		in.Status.ExternalName = nil
		meta.RemoveStatusCondition(&in.Status.Conditions, ConditionEndpointsHealthy)
		forgetEndpointMetrics(in)
		return ctrl.Result{}, r.deleteOwnedSlices(ctx, in)
	}
	if in.Spec.Exposure == v1alpha1.ExposureExternalName {
		// Targets are health-checked by judgeTargets; there are no
		// endpoints to publish.
		in.Status.Endpoints = nil
		forgetEndpointMetrics(in)
		return ctrl.Result{}, r.deleteOwnedSlices(ctx, in)
	}

	cands, excluded, err := r.candidates(ctx, in)
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
	verdict := endpoints.Judge(cands, func(c endpoints.Candidate) *endpoints.ProbeResult {
		if states == nil {
			return nil
		}
		st, ok := states[c.Address.String()]
		if !ok {
			return &endpoints.ProbeResult{Healthy: true} // not probed yet
		}
		return &endpoints.ProbeResult{Healthy: st.Healthy, Err: st.Failure, Forbidden: st.Forbidden}
	}, hc.IgnorePodReadiness, ptr.Deref(hc.MinHealthyPercent, 0))

	before := publishedReady(existing)
	plan := endpoints.Reconcile(endpoints.Target{
		Namespace:   in.Namespace,
		ServiceName: in.Name,
		ManagedBy:   ManagedByController,
		Owner:       *metav1.NewControllerRef(in, v1alpha1.GroupVersion.WithKind("NetworkIntent")),
		Labels:      map[string]string{intent.LabelIntent: in.Name},
		Headless:    in.Spec.Headless,
	}, verdict.Endpoints, existing)
	unseen, err := r.applySlices(ctx, plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.recordFlips(in, before, verdict.Endpoints)
	r.setEndpointsStatus(in, verdict, excluded)
	if unseen {
		// The cache had not seen a slice we wrote; its event may have
		// come already, so look again soon.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// forgetEndpointMetrics drops the intent's endpoint gauges.
func forgetEndpointMetrics(in *v1alpha1.NetworkIntent) {
	endpointsGauge.DeletePartialMatch(prometheus.Labels{"namespace": in.Namespace, "intent": in.Name})
}

// serviceIsOurs tells whether the intent owns its Service; endpoints are
// not written for a Service that belongs to someone else.
func serviceIsOurs(in *v1alpha1.NetworkIntent) bool {
	return !conditionIs(in, ConditionServiceReady, ReasonServiceConflict)
}

// candidates are the intent's backends of the Service's IP families, and
// those left out with why.
func (r *IntentReconciler) candidates(ctx context.Context, in *v1alpha1.NetworkIntent) ([]endpoints.Candidate, []v1alpha1.UnhealthyEndpoint, error) {
	cands, excluded, err := r.allCandidates(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	served, otherFamily := endpoints.ServedFamilies(cands, r.serviceFamilies(ctx, in))
	return served, append(excluded, otherFamily...), nil
}

// serviceFamilies are the IP families of the intent's Service; none when
// the cache has not seen it yet (its event brings the intent back).
func (r *IntentReconciler) serviceFamilies(ctx context.Context, in *v1alpha1.NetworkIntent) []corev1.IPFamily {
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(in), svc); err != nil {
		return nil
	}
	return svc.Spec.IPFamilies
}

func (r *IntentReconciler) allCandidates(ctx context.Context, in *v1alpha1.NetworkIntent) ([]endpoints.Candidate, []v1alpha1.UnhealthyEndpoint, error) {
	cands, excluded := endpoints.FromBackends(in)
	if in.Spec.Selector == nil {
		return cands, excluded, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(in.Spec.Selector)
	if err != nil {
		return nil, nil, fmt.Errorf("selector: %w", err)
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(in.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
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
	return append(cands, podCands...), append(excluded, podExcluded...), nil
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
// held out by either: it needs one pass. Any other starts healthy.
func (r *IntentReconciler) setProbes(key string, hc *v1alpha1.HealthCheck, cands []endpoints.Candidate, outOfTraffic map[string]bool) map[string]health.TargetState {
	if (hc.HTTP == nil && hc.TCP == nil) || len(cands) == 0 {
		r.Prober.Remove(key)
		return nil
	}
	targets := make([]health.Target, 0, len(cands))
	for _, c := range cands {
		port := int32(0)
		if len(c.Ports) > 0 {
			port = c.Ports[0].Number
		}
		spec, _ := health.SpecFor(hc.ProbeHandler, hc, port)
		tg := health.Target{ID: c.Address.String(), Address: c.Address.String(), Spec: spec}
		if outOfTraffic[tg.ID] {
			tg.StartUnhealthy = c.PodReady || hc.IgnorePodReadiness
			tg.StartUnproven = !tg.StartUnhealthy
		}
		targets = append(targets, tg)
	}
	r.Prober.Set(key, targets)
	return r.Prober.Status(key)
}

func (r *IntentReconciler) ownedSlices(ctx context.Context, in *v1alpha1.NetworkIntent) ([]discoveryv1.EndpointSlice, error) {
	return listOwnedSlices(ctx, r.Client, in)
}

// listOwnedSlices lists the EndpointSlices the intent controls: its
// Service's, managed by netintent, and with the intent as controller.
func listOwnedSlices(ctx context.Context, reader client.Reader, in *v1alpha1.NetworkIntent) ([]discoveryv1.EndpointSlice, error) {
	list := &discoveryv1.EndpointSliceList{}
	if err := reader.List(ctx, list, client.InNamespace(in.Namespace), client.MatchingLabels{
		discoveryv1.LabelServiceName: in.Name,
		discoveryv1.LabelManagedBy:   ManagedByController,
	}); err != nil {
		return nil, fmt.Errorf("listing endpoint slices: %w", err)
	}
	owned := list.Items[:0]
	for _, s := range list.Items {
		if metav1.IsControlledBy(&s, in) {
			owned = append(owned, s)
		}
	}
	return owned, nil
}

// applySlices writes the plan. A slice to create that exists already is
// one the cache has not seen yet: it is skipped, and unseen says so.
func (r *IntentReconciler) applySlices(ctx context.Context, plan endpoints.Plan) (unseen bool, err error) {
	for _, s := range plan.Create {
		err := r.Client.Create(ctx, s)
		switch {
		case apierrors.IsAlreadyExists(err):
			unseen = true
		case err != nil:
			return unseen, fmt.Errorf("creating endpoint slice %s: %w", s.Name, err)
		}
	}
	for _, s := range plan.Update {
		if err := r.Client.Update(ctx, s, client.FieldOwner(intent.FieldOwner)); err != nil {
			return unseen, fmt.Errorf("updating endpoint slice %s: %w", s.Name, err)
		}
	}
	for _, s := range plan.Delete {
		if err := r.Client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return unseen, fmt.Errorf("deleting endpoint slice %s: %w", s.Name, err)
		}
	}
	return unseen, nil
}

// publishedReady is the ready state of each address in the slices.
func publishedReady(slices []discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) > 0 {
				out[ep.Addresses[0]] = ptr.Deref(ep.Conditions.Ready, false)
			}
		}
	}
	return out
}

// publishedOutOfTraffic is the addresses the slices publish not ready and
// not terminating: out of traffic for their health.
func publishedOutOfTraffic(slices []discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) > 0 && !ptr.Deref(ep.Conditions.Ready, false) && !ptr.Deref(ep.Conditions.Terminating, false) {
				out[ep.Addresses[0]] = true
			}
		}
	}
	return out
}

// recordFlips emits an event for each endpoint that left or rejoined
// traffic since the slices were last written.
func (r *IntentReconciler) recordFlips(in *v1alpha1.NetworkIntent, before map[string]bool, eps []endpoints.Endpoint) {
	for _, ep := range eps {
		addr := ep.Address.Unmap().String()
		was, known := before[addr]
		switch {
		case known && was && !ep.Ready && !ep.Terminating:
			r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, "EndpointUnhealthy", "Publish", "Endpoint %s left traffic", addr)
		case known && !was && ep.Ready:
			r.Recorder.Eventf(in, nil, corev1.EventTypeNormal, "EndpointHealthy", "Publish", "Endpoint %s rejoined traffic", addr)
		}
	}
}

func (r *IntentReconciler) setEndpointsStatus(in *v1alpha1.NetworkIntent, v endpoints.Verdict, excluded []v1alpha1.UnhealthyEndpoint) {
	unhealthy := append(append([]v1alpha1.UnhealthyEndpoint(nil), v.Unhealthy...), excluded...)
	if len(unhealthy) > maxUnhealthyListed {
		unhealthy = unhealthy[:maxUnhealthyListed]
	}
	in.Status.Endpoints = &v1alpha1.EndpointsStatus{
		Total:     int32(v.Total),
		Healthy:   int32(v.Healthy),
		Summary:   strconv.Itoa(v.Healthy) + "/" + strconv.Itoa(v.Total),
		Unhealthy: unhealthy,
	}
	ready := 0
	for _, ep := range v.Endpoints {
		if ep.Ready {
			ready++
		}
	}
	endpointsGauge.WithLabelValues(in.Namespace, in.Name, "total").Set(float64(v.Total))
	endpointsGauge.WithLabelValues(in.Namespace, in.Name, "healthy").Set(float64(v.Healthy))
	endpointsGauge.WithLabelValues(in.Namespace, in.Name, "ready").Set(float64(ready))

	floor := int32(0)
	if hc := in.Spec.HealthCheck; hc != nil {
		floor = ptr.Deref(hc.MinHealthyPercent, 0)
	}
	switch {
	case v.Total == 0 && len(excluded) > 0:
		setCondition(in, ConditionEndpointsHealthy, false, ReasonNoBackends,
			"no usable backends: %s", excluded[0].Message)
	case v.Total == 0:
		setCondition(in, ConditionEndpointsHealthy, false, ReasonNoBackends,
			"no backends: no running pod with an IP matches the selector, and no static backends are listed")
	case v.BelowFloor:
		if !conditionIs(in, ConditionEndpointsHealthy, ReasonBelowHealthyFloor) {
			r.Recorder.Eventf(in, nil, corev1.EventTypeWarning, ReasonBelowHealthyFloor, "Publish",
				"Only %d of %d endpoints are healthy, below the %d%% floor: publishing every pod-ready endpoint", v.Healthy, v.Total, floor)
		}
		setCondition(in, ConditionEndpointsHealthy, false, ReasonBelowHealthyFloor,
			"only %d of %d endpoints are healthy, below minHealthyPercent %d%%: every pod-ready endpoint stays in traffic; see status.endpoints.unhealthy",
			v.Healthy, v.Total, floor)
	case v.Healthy < v.Total:
		setCondition(in, ConditionEndpointsHealthy, false, ReasonDegraded,
			"%d of %d endpoints are healthy; the others are out of traffic (see status.endpoints.unhealthy)", v.Healthy, v.Total)
	default:
		setCondition(in, ConditionEndpointsHealthy, true, ReasonAllHealthy, "all %d endpoints are healthy", v.Total)
	}
}
