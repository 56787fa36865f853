package controllers

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/manifests"
	"github.com/netintent/netintent/internal/testenv"
)

// TestAdmissionPolicySetsFinalizer installs config/admission's policy, its
// binding narrowed to one namespace so that the suite's other tests keep
// the operator adding the finalizer itself, and watches every version of a
// new intent there: each carries the finalizer from the create on, so the
// operator, which adds it only where it is missing, has no write of its own
// to make.
func TestAdmissionPolicySetsFinalizer(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	objs, err := manifests.Read(filepath.Join("..", manifests.AdmissionPolicy))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		obj.SetName(obj.GetName() + "-" + ns)
		if obj.GetKind() == "MutatingAdmissionPolicyBinding" {
			policy, _, _ := unstructured.NestedString(obj.Object, "spec", "policyName")
			_ = unstructured.SetNestedField(obj.Object, policy+"-"+ns, "spec", "policyName")
			_ = unstructured.SetNestedStringMap(obj.Object, map[string]string{"kubernetes.io/metadata.name": ns}, "spec", "matchResources", "namespaceSelector", "matchLabels")
		}
	}
	if err := manifests.Create(ctx, k8sClient, objs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, obj := range objs {
			_ = k8sClient.Delete(ctx, obj)
		}
	})
	// The API server takes up a new policy a moment later.
	if err := manifests.WaitForAdmissionPolicy(ctx, k8sClient, ns); err != nil {
		t.Fatal(err)
	}
	// Other finalizers stay, and the operator's is never there twice.
	for _, given := range [][]string{{"example.com/keep"}, {v1alpha1.IntentFinalizer}, {"example.com/keep", v1alpha1.IntentFinalizer}} {
		probe := webIntent(ns, "probe", v1alpha1.ExposureClusterIP)
		probe.Finalizers = append([]string(nil), given...)
		if err := k8sClient.Create(ctx, probe, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		want := append([]string(nil), given...)
		if !slices.Contains(want, v1alpha1.IntentFinalizer) {
			want = append(want, v1alpha1.IntentFinalizer)
		}
		if !slices.Equal(probe.Finalizers, want) {
			t.Errorf("created with finalizers %v: came back with %v, want %v", given, probe.Finalizers, want)
		}
	}

	wc, err := client.NewWithWatch(testEnv.Config, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &v1alpha1.NetworkIntentList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	in := webIntent(ns, "web", v1alpha1.ExposureClusterIP)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !hasFinalizer(in) {
		t.Fatalf("the create came back with finalizers %v", in.Finalizers)
	}
	versions := 0
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended")
			}
			got, isIntent := ev.Object.(*v1alpha1.NetworkIntent)
			if !isIntent || ev.Type == watch.Bookmark {
				continue
			}
			versions++
			if !hasFinalizer(got) {
				t.Errorf("version %s has finalizers %v", got.ResourceVersion, got.Finalizers)
			}
			if ready := testenv.IntentCondition(got, v1alpha1.IntentConditionReady, metav1.ConditionTrue, v1alpha1.IntentReasonReady); ready == nil {
				t.Logf("Ready after %d versions of the intent, each with the finalizer", versions)
				return
			}
		case <-deadline:
			t.Fatalf("the intent was not Ready within 20s (%d versions)", versions)
		}
	}
}

func hasFinalizer(in *v1alpha1.NetworkIntent) bool {
	return slices.Contains(in.Finalizers, v1alpha1.IntentFinalizer)
}
