package controllers

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/compact"
)

// intentStore is the intent informer's store, which holds the intents in
// their compact form (trimIntent).
func intentStore(ctx context.Context, mgr ctrl.Manager) (toolscache.Indexer, error) {
	shared, err := sharedInformer(ctx, mgr, &v1alpha1.NetworkIntent{})
	if err != nil {
		return nil, fmt.Errorf("watching intents: %w", err)
	}
	return shared.GetIndexer(), nil
}

// intentsSelectingLabels are the names of the intents of a namespace whose
// selector selects an object with these labels. It reads store (the
// intent informer's), where each intent's selector is held apart
// (compact.Intent), so that nothing else of the namespace's intents is
// decoded: a pod's change asks it of every intent of the pod's namespace.
// Without a store it lists the intents through c.
func intentsSelectingLabels(ctx context.Context, c client.Reader, store toolscache.Indexer, namespace string, objLabels map[string]string) ([]types.NamespacedName, error) {
	set := labels.Set(objLabels)
	var objs []any
	if store == nil {
		list := &v1alpha1.NetworkIntentList{}
		if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing intents: %w", err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	} else {
		var err error
		if objs, err = store.ByIndex(toolscache.NamespaceIndex, namespace); err != nil {
			return nil, fmt.Errorf("listing intents: %w", err)
		}
	}
	var names []types.NamespacedName
	for _, obj := range objs {
		var selects bool
		switch in := obj.(type) {
		case *compact.Intent:
			selects = in.Selects(set)
		case *v1alpha1.NetworkIntent: // listed, or kept whole by trimIntent
			if in.Spec.Selector != nil {
				sel, err := metav1.LabelSelectorAsSelector(in.Spec.Selector)
				selects = err == nil && sel.Matches(set)
			}
		}
		if selects {
			o := obj.(client.Object)
			names = append(names, types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
		}
	}
	return names, nil
}

// exposureOf is the exposure of an intent as an event hands it over: in
// its compact form, or whole.
func exposureOf(obj client.Object) v1alpha1.Exposure {
	switch in := obj.(type) {
	case *compact.Intent:
		return in.Exposure()
	case *v1alpha1.NetworkIntent:
		return in.Spec.Exposure
	}
	return ""
}
