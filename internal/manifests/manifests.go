// Package manifests installs the project's own manifests (config/...) on a
// control plane that the project starts itself: the local one of `make run`,
// the benchmark's and the tests'. A cluster gets them through kustomize.
package manifests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
)

// Read decodes every object of a YAML file of one or more documents.
func Read(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var objs []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// Create creates objs; one that exists already is left as it is.
func Create(ctx context.Context, c client.Client, objs ...*unstructured.Unstructured) error {
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// AdmissionPolicy is the file, under the project folder, of the admission
// policy that puts the operator's finalizer on new intents.
const AdmissionPolicy = "config/admission/finalizer_policy.yaml"

// InstallAdmissionPolicy creates the admission policy from the project
// folder root, and returns once the API server applies it.
func InstallAdmissionPolicy(ctx context.Context, c client.Client, root string) error {
	objs, err := Read(filepath.Join(root, AdmissionPolicy))
	if err != nil {
		return err
	}
	if err := Create(ctx, c, objs...); err != nil {
		return err
	}
	return WaitForAdmissionPolicy(ctx, c, metav1.NamespaceDefault)
}

// WaitForAdmissionPolicy returns once a dry-run create of an intent in
// namespace comes back with the operator's finalizer. Until then (the API
// server needs the intents' schema, which it builds a few seconds after the
// CRD is created) creating an intent the policy matches fails.
func WaitForAdmissionPolicy(ctx context.Context, c client.Client, namespace string) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		in := &v1alpha1.NetworkIntent{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "admission-probe"},
			Spec: v1alpha1.NetworkIntentSpec{
				Exposure: v1alpha1.ExposureClusterIP,
				Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80}},
				Backends: []v1alpha1.Backend{{Address: "192.0.2.10"}},
			},
		}
		if last = c.Create(ctx, in, client.DryRunAll); last != nil {
			return false, nil
		}
		if !slices.Contains(in.Finalizers, v1alpha1.IntentFinalizer) {
			last = fmt.Errorf("a dry-run create of an intent came back with finalizers %v", in.Finalizers)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("the admission policy is not applied: %w (last: %v)", err, last)
	}
	return nil
}

// ReadinessGatePolicy is the file, under the project folder, of the
// admission policy that adds the operator's readiness gate to new pods in
// namespaces that opt in.
const ReadinessGatePolicy = "config/admission/readiness_gate_policy.yaml"
