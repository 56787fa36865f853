package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// podNodeField indexes pods by the name of their node.
const podNodeField = "spec.nodeName"

// indexPodsByNode lets intentsOnNode list a node's pods from the cache.
func indexPodsByNode(ctx context.Context, mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, podNodeField, func(obj client.Object) []string {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" {
			return []string{pod.Spec.NodeName}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	return nil
}

// nodeZoneChanged passes the Node events that change the zone its pods'
// endpoints carry: a zone label set, changed or removed, and a node with a
// zone that comes or goes.
func nodeZoneChanged() predicate.Predicate {
	zone := func(obj client.Object) string { return obj.GetLabels()[corev1.LabelTopologyZone] }
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return zone(e.Object) != "" },
		UpdateFunc:  func(e event.UpdateEvent) bool { return zone(e.ObjectOld) != zone(e.ObjectNew) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return zone(e.Object) != "" },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// intentsOnNode maps a node to the intents that select a pod on it, whose
// endpoints name the node's zone.
func (r *IntentReconciler) intentsOnNode(ctx context.Context, node client.Object) []reconcile.Request {
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.MatchingFields{podNodeField: node.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "Listing pods of a node", "node", klog.KObj(node))
		return nil
	}
	seen := map[reconcile.Request]bool{}
	var reqs []reconcile.Request
	for i := range pods.Items {
		for _, req := range r.intentsSelecting(ctx, &pods.Items[i]) {
			if !seen[req] {
				seen[req] = true
				reqs = append(reqs, req)
			}
		}
	}
	return reqs
}
