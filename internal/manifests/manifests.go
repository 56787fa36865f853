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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
// folder root.
func InstallAdmissionPolicy(ctx context.Context, c client.Client, root string) error {
	objs, err := Read(filepath.Join(root, AdmissionPolicy))
	if err != nil {
		return err
	}
	return Create(ctx, c, objs...)
}
