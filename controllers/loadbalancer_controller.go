package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/assign"
	"github.com/netintent/netintent/internal/compact"
	"github.com/netintent/netintent/internal/ipam"
)

// LoadBalancerReconciler gives LoadBalancer Services of class
// networking.netintent.io/address-pool an address from an AddressPool, from
// intents and plain Services alike. It alone writes those Services'
// status.loadBalancer.ingress and their AddressAssigned condition.
//
// It needs no finalizer: the allocator is rebuilt from the Services' status
// on start, and a Service found gone releases its address.
type LoadBalancerReconciler struct {
	Client client.Client
	// APIReader reads from the API server, for an owning intent the cache
	// has not seen yet.
	APIReader client.Reader
	Recorder  events.EventRecorder

	pools *addressPools
}

var _ reconcile.Reconciler = &LoadBalancerReconciler{}

// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.netintent.io,resources=networkintents,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.netintent.io,resources=addresspools,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile gives the Service its address, or says in its status why not.
func (r *LoadBalancerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Before any decision: the pools are current and every address shown
	// by a Service is re-claimed.
	if err := r.pools.Sync(ctx); err != nil {
		return ctrl.Result{}, err
	}
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.pools.Release(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !svc.DeletionTimestamp.IsZero() {
		// It keeps its address until it is gone, so no other Service
		// shows the same one meanwhile.
		return ctrl.Result{}, nil
	}
	if !servedService(svc) {
		if err := r.forget(ctx, svc, r.pools.Release(req.NamespacedName)); err != nil {
			return r.writeFailed(svc, err)
		}
		return ctrl.Result{}, nil
	}

	request, err := r.request(ctx, svc)
	if err != nil {
		return ctrl.Result{}, err
	}
	out, refused := r.pools.Assign(request)
	return r.writeStatus(ctx, svc, out, refused)
}

// forget removes what the reconciler wrote on a Service it no longer
// serves: its condition and pool annotation, and the ingress addresses it
// gave (all of them if the Service is no longer a LoadBalancer).
func (r *LoadBalancerReconciler) forget(ctx context.Context, svc *corev1.Service, released []netip.Addr) error {
	if meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned) != nil {
		updated := svc.DeepCopy()
		meta.RemoveStatusCondition(&updated.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned)
		ingress := updated.Status.LoadBalancer.Ingress[:0:0]
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			addr, err := netip.ParseAddr(ing.IP)
			if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || (err == nil && slices.Contains(released, addr.Unmap())) {
				continue
			}
			ingress = append(ingress, ing)
		}
		updated.Status.LoadBalancer.Ingress = ingress
		if err := patchStatus(ctx, r.Client, updated, svc); err != nil {
			return fmt.Errorf("clearing load-balancer status: %w", err)
		}
		svc = updated
		if len(released) > 0 {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, "AddressReleased", "Release",
				"Released address %s: the Service is no longer a LoadBalancer of class %s", released[0], v1alpha1.AddressPoolClass)
		}
	}
	return r.annotatePool(ctx, svc, "")
}

// annotatePool records in the Service's annotation the pool its address
// is from, or removes the annotation when pool is "". On success svc is the
// Service as written.
func (r *LoadBalancerReconciler) annotatePool(ctx context.Context, svc *corev1.Service, pool string) error {
	if cur, ok := svc.Annotations[v1alpha1.AnnotationAllocatedFromPool]; cur == pool && ok == (pool != "") {
		return nil
	}
	updated := svc.DeepCopy()
	if pool == "" {
		delete(updated.Annotations, v1alpha1.AnnotationAllocatedFromPool)
	} else {
		if updated.Annotations == nil {
			updated.Annotations = map[string]string{}
		}
		updated.Annotations[v1alpha1.AnnotationAllocatedFromPool] = pool
	}
	patch := client.MergeFromWithOptions(svc, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Patch(ctx, updated, patch, client.FieldOwner(v1alpha1.AddressFieldOwner)); err != nil {
		return fmt.Errorf("recording the address's pool: %w", err)
	}
	*svc = *updated
	return nil
}

// request reads what the Service asks for: from its controlling intent's
// loadBalancer, or from its annotations if it has none.
func (r *LoadBalancerReconciler) request(ctx context.Context, svc *corev1.Service) (assign.Request, error) {
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: svc.Namespace}, ns); err != nil {
		return assign.Request{}, fmt.Errorf("getting namespace: %w", err)
	}
	req := assign.Request{
		Key:             client.ObjectKeyFromObject(svc),
		Namespace:       svc.Namespace,
		NamespaceLabels: labels.Set(ns.Labels),
		Family:          ipam.IPv4,
		Current:         ingressAddrs(svc),
		Address:         svc.Annotations[v1alpha1.AnnotationAddress],
		Pool:            svc.Annotations[v1alpha1.AnnotationPool],
		AddressField:    "annotation " + v1alpha1.AnnotationAddress,
		PoolField:       "annotation " + v1alpha1.AnnotationPool,
	}
	if len(svc.Spec.IPFamilies) > 0 && svc.Spec.IPFamilies[0] == corev1.IPv6Protocol {
		req.Family = ipam.IPv6
	}
	if len(svc.Spec.IPFamilies) == 2 {
		req.Second = ipam.IPv6
		if req.Family == ipam.IPv6 {
			req.Second = ipam.IPv4
		}
		req.RequireBoth = ptr.Deref(svc.Spec.IPFamilyPolicy, "") == corev1.IPFamilyPolicyRequireDualStack
	}
	in, err := r.owningIntent(ctx, svc)
	if err != nil || in == nil {
		return req, err
	}
	req.Address, req.Pool = "", ""
	if lb := in.Spec.LoadBalancer; lb != nil {
		req.Address, req.Pool = lb.Address, lb.Pool
	}
	req.AddressField = "loadBalancer.address of NetworkIntent " + in.Name
	req.PoolField = "loadBalancer.pool of NetworkIntent " + in.Name
	return req, nil
}

// owningIntent returns the NetworkIntent that controls the Service, or nil
// if none does (or it is gone).
func (r *LoadBalancerReconciler) owningIntent(ctx context.Context, svc *corev1.Service) (*v1alpha1.NetworkIntent, error) {
	ref := controllingIntent(svc)
	if ref == nil || ref.Name != svc.Name {
		return nil, nil
	}
	in := &v1alpha1.NetworkIntent{}
	key := client.ObjectKey{Namespace: svc.Namespace, Name: ref.Name}
	err := r.Client.Get(ctx, key, in)
	if apierrors.IsNotFound(err) || (err == nil && in.UID != ref.UID) {
		// The cache may not have seen the intent yet: ask the API
		// server rather than serve the Service without its request.
		err = r.APIReader.Get(ctx, key, in)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("getting intent: %w", err)
	case in.UID != ref.UID:
		return nil, nil
	}
	return in, nil
}

// writeStatus writes the assignment in the Service's status and its pool
// annotation when it changes them, with an event for a person to see:
// out is the assignment, or refused says why there is none. The annotation
// names the new pool before the address shows, and goes once no address
// does.
func (r *LoadBalancerReconciler) writeStatus(ctx context.Context, svc *corev1.Service, out assign.Outcome, refused error) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	prev := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned)
	shown := ingressAddrs(svc)
	cond := assign.Condition(out, refused, svc.Generation)
	// The optimistic locks keep a stale cache from repeating a write and
	// its event.
	if out.Assigned() {
		if err := r.annotatePool(ctx, svc, out.Pool); err != nil {
			return r.writeFailed(svc, err)
		}
	}
	status := serviceAddressStatus(svc, out, cond)
	if !equality.Semantic.DeepEqual(&svc.Status, status) {
		updated := svc.DeepCopy()
		updated.Status = *status
		log.V(1).Info("Updating load-balancer status", "service", klog.KObj(svc), "reason", cond.Reason)
		if err := patchStatus(ctx, r.Client, updated, svc); err != nil {
			return r.writeFailed(svc, fmt.Errorf("updating load-balancer status: %w", err))
		}
		*svc = *updated
		switch {
		case out.Assigned() && newAddress(shown, out.Addrs()):
			r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, v1alpha1.AddressReasonAssigned, "Allocate", "Assigned %s", out.Message)
		case !out.Assigned() && (prev == nil || prev.Reason != cond.Reason):
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, cond.Reason, "Allocate", "%s", cond.Message)
		}
	}
	if !out.Assigned() {
		if err := r.annotatePool(ctx, svc, ""); err != nil {
			return r.writeFailed(svc, err)
		}
	}
	return ctrl.Result{}, nil
}

// writeFailed turns a failed write to the Service into the reconcile's
// result: a Service gone frees its address, a conflict is tried again
// (retryConflict).
func (r *LoadBalancerReconciler) writeFailed(svc *corev1.Service, err error) (ctrl.Result, error) {
	if apierrors.IsNotFound(err) {
		r.pools.Release(client.ObjectKeyFromObject(svc))
		return ctrl.Result{}, nil
	}
	return retryConflict(err)
}

// serviceAddressStatus is the Service's status with the assignment written
// in: the addresses given (one per family, the Service's first family
// first) as the only ingress, and the AddressAssigned condition cond.
func serviceAddressStatus(svc *corev1.Service, out assign.Outcome, cond metav1.Condition) *corev1.ServiceStatus {
	status := svc.Status.DeepCopy()
	status.LoadBalancer.Ingress = nil
	if out.Assigned() {
		for _, addr := range out.Addrs() {
			status.LoadBalancer.Ingress = append(status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{
				IP: addr.String(),
				// Traffic reaches the nodes addressed to this IP; the
				// API server would default it so.
				IPMode: ptr.To(corev1.LoadBalancerIPModeVIP),
			})
		}
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	return status
}

// newAddress reports whether given holds an address not in shown.
func newAddress(shown, given []netip.Addr) bool {
	for _, a := range given {
		if !slices.Contains(shown, a) {
			return true
		}
	}
	return false
}

// SetupWithManager registers the reconciler. Besides its Services it
// watches what a decision depends on: the owning intent's spec, namespace
// labels (pool namespaceSelectors), and, through the address pools, freed
// addresses and changed pools.
func (r *LoadBalancerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("loadbalancer").
		For(&corev1.Service{}, builder.WithPredicates(addressServicePredicate())).
		Watches(&v1alpha1.NetworkIntent{}, handler.EnqueueRequestsFromMapFunc(serviceOfIntent),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.servicesInNamespace),
			builder.WithPredicates(labelsChanged())).
		WatchesRawSource(r.pools.services.source()).
		Complete(r)
}

// addressServicePredicate passes Services the reconciler serves, served
// before, or wrote its condition on.
func addressServicePredicate() predicate.Predicate {
	ours := func(obj client.Object) bool {
		svc, ok := compact.As[*corev1.Service](obj)
		if !ok {
			return false
		}
		_, annotated := svc.Annotations[v1alpha1.AnnotationAllocatedFromPool]
		return servedService(svc) || annotated || meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ServiceConditionAddressAssigned) != nil
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return ours(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return ours(e.ObjectOld) || ours(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return ours(e.Object) },
		GenericFunc: func(e event.GenericEvent) bool { return ours(e.Object) },
	}
}

func labelsChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !labels.Equals(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// serviceOfIntent maps a LoadBalancer intent to its Service (same name).
func serviceOfIntent(_ context.Context, obj client.Object) []reconcile.Request {
	if exposureOf(obj) != v1alpha1.ExposureLoadBalancer {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(obj)}}
}

// servicesInNamespace maps a namespace to its Services of the class.
func (r *LoadBalancerReconciler) servicesInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	services := &corev1.ServiceList{}
	if err := r.Client.List(ctx, services, client.InNamespace(obj.GetName())); err != nil {
		logf.FromContext(ctx).Error(err, "Listing services of a namespace", "namespace", obj.GetName())
		return nil
	}
	var reqs []reconcile.Request
	for i := range services.Items {
		if servedService(&services.Items[i]) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&services.Items[i])})
		}
	}
	return reqs
}
