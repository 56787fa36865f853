package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/assign"
	"github.com/netintent/netintent/internal/ipam"
)

// AddressPoolReconciler reports each AddressPool's use in its status: the
// addresses assigned and free per family, and whether the pool is in use.
// It is the only writer of AddressPool status; the LoadBalancerReconciler
// asks it to report a pool when an address of it is given or freed.
type AddressPoolReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder

	pools *addressPools
}

var _ reconcile.Reconciler = &AddressPoolReconciler{}

// +kubebuilder:rbac:groups=networking.netintent.io,resources=addresspools,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.netintent.io,resources=addresspools/status,verbs=patch

// Reconcile brings the pool's status in line with the allocator.
func (r *AddressPoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if err := r.pools.Sync(ctx); err != nil {
		return ctrl.Result{}, err
	}
	pool := &v1alpha1.AddressPool{}
	if err := r.Client.Get(ctx, req.NamespacedName, pool); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	view, counts := r.pools.Report(pool.Name)
	if view == nil || view.Generation != pool.Generation {
		// The cache moved on since the last sync; the event that moved
		// it brings the pool back here after the next one.
		return ctrl.Result{}, nil
	}

	status := addressPoolStatus(pool, view, counts)
	if equality.Semantic.DeepEqual(&pool.Status, status) {
		return ctrl.Result{}, nil
	}
	updated := pool.DeepCopy()
	updated.Status = *status
	logf.FromContext(ctx).V(1).Info("Updating address pool status", "addressPool", klog.KObj(pool))
	if err := patchStatus(ctx, r.Client, updated, pool); err != nil {
		return retryConflict(client.IgnoreNotFound(fmt.Errorf("updating address pool status: %w", err)))
	}
	r.recordTransitions(pool, updated)
	return ctrl.Result{}, nil
}

// recordTransitions tells a person when the pool stops being used or runs
// out of addresses.
func (r *AddressPoolReconciler) recordTransitions(before, after *v1alpha1.AddressPool) {
	was := meta.FindStatusCondition(before.Status.Conditions, v1alpha1.AddressPoolConditionReady)
	now := meta.FindStatusCondition(after.Status.Conditions, v1alpha1.AddressPoolConditionReady)
	if now.Status == metav1.ConditionFalse && (was == nil || was.Reason != now.Reason) {
		r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, now.Reason, "Validate", "%s", now.Message)
	}
	for _, fam := range []struct {
		name        string
		before, now *v1alpha1.PoolCounts
	}{{"IPv4", before.Status.IPv4, after.Status.IPv4}, {"IPv6", before.Status.IPv6, after.Status.IPv6}} {
		if fam.now != nil && fam.now.Free == "0" && (fam.before == nil || fam.before.Free != "0") {
			r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, v1alpha1.AddressPoolReasonExhausted, "Allocate",
				"Every %s address of the pool is assigned (%s); Services that ask for one wait: add addresses to the pool", fam.name, fam.now.Total)
		}
	}
}

// addressPoolStatus is the pool's status: counts per family from the
// allocator (none for a pool not in use) and the Ready condition.
func addressPoolStatus(pool *v1alpha1.AddressPool, view *assign.Pool, counts *ipam.PoolCounts) *v1alpha1.AddressPoolStatus {
	status := pool.Status.DeepCopy()
	status.ObservedGeneration = view.Generation
	status.IPv4, status.IPv6 = nil, nil
	cond := metav1.Condition{
		Type:               v1alpha1.AddressPoolConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.AddressPoolReasonInUse,
		Message:            "the pool gives addresses to LoadBalancer Services of class " + v1alpha1.AddressPoolClass,
		ObservedGeneration: view.Generation,
	}
	switch {
	case !view.InUse:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, view.Reason, view.Message
	case counts != nil:
		status.IPv4 = familyCounts(counts.IPv4)
		status.IPv6 = familyCounts(counts.IPv6)
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	return status
}

func familyCounts(c ipam.FamilyCounts) *v1alpha1.PoolCounts {
	if c.Total == nil || c.Total.Sign() == 0 {
		return nil
	}
	return &v1alpha1.PoolCounts{Total: c.Total.String(), Assigned: c.Assigned, Free: c.Free.String()}
}

// SetupWithManager registers the reconciler.
func (r *AddressPoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("addresspool").
		For(&v1alpha1.AddressPool{}).
		WatchesRawSource(r.pools.poolQueue.source()).
		Complete(r)
}
