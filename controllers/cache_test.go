package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/netintent/netintent/api/v1alpha1"
)

// TestCacheTrims checks the cache transforms: managedFields and the
// last-applied annotation go from every object but an intent's Service,
// which the operator compares with what it applied; other annotations stay.
func TestCacheTrims(t *testing.T) {
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: "web", Namespace: "ns",
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"big":"copy"}`, v1alpha1.AnnotationFailbackNow: "true"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}},
		}
	}
	intentOwned := meta()
	intentOwned.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "NetworkIntent", Name: "web", UID: "u", Controller: ptr.To(true)}}
	for _, tc := range []struct {
		name   string
		obj    metav1.Object
		trimFn func(any) (any, error)
		kept   bool
	}{
		{"intent", &v1alpha1.NetworkIntent{ObjectMeta: meta()}, trim, false},
		{"foreign Service", &corev1.Service{ObjectMeta: meta()}, trimService, false},
		{"an intent's Service", &corev1.Service{ObjectMeta: intentOwned}, trimService, true},
	} {
		out, err := tc.trimFn(tc.obj)
		if err != nil {
			t.Fatal(err)
		}
		m := out.(metav1.Object)
		_, lastApplied := m.GetAnnotations()[corev1.LastAppliedConfigAnnotation]
		if got := lastApplied || len(m.GetManagedFields()) > 0; got != tc.kept {
			t.Errorf("%s: managedFields %v, last-applied %v; want them kept: %v", tc.name, m.GetManagedFields(), lastApplied, tc.kept)
		}
		if m.GetAnnotations()[v1alpha1.AnnotationFailbackNow] != "true" {
			t.Errorf("%s: other annotations lost: %v", tc.name, m.GetAnnotations())
		}
	}
}

// TestLastAppliedSurvives creates an intent as a client-side `kubectl apply`
// does, with the last-applied annotation that the cache drops: the
// operator's writes of the intent (finalizer patch, status) must leave it on
// the intent.
func TestLastAppliedSurvives(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	in.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"networking.netintent.io/v1alpha1"}`}
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	converged(t, ns, "web")
	eventually(t, 10*time.Second, func() error {
		got, err := getIntent(ctx, ns, "web")
		if err != nil {
			return err
		}
		if err := conditionStatus(got, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady); err != nil {
			return err
		}
		if got.Annotations[corev1.LastAppliedConfigAnnotation] != in.Annotations[corev1.LastAppliedConfigAnnotation] || !hasFinalizer(got) {
			t.Fatalf("the operator's writes changed the intent's metadata: annotations %v, finalizers %v", got.Annotations, got.Finalizers)
		}
		return nil
	})
}
