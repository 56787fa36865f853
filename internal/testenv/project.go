package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Root is the project folder: the nearest folder above the working
// directory that holds go.mod (a package's tests run in its own folder).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RootT is Root, failing the test when there is none.
func RootT(t testing.TB) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Assets is the folder of kube-apiserver, etcd, kubectl and kube-proxy:
// KUBEBUILDER_ASSETS, or bin/k8s under root.
func Assets(root string) string {
	if a := os.Getenv("KUBEBUILDER_ASSETS"); a != "" {
		return a
	}
	return filepath.Join(root, "bin", "k8s")
}

// OperatorBinary is the operator built by `make build`.
func OperatorBinary(root string) string {
	return filepath.Join(root, "bin", "netintent")
}

// CRDs is the folder of the generated CustomResourceDefinitions.
func CRDs(root string) string {
	return filepath.Join(root, "config", "crd", "bases")
}

// Executable returns an error naming the make target that builds path when
// path is not an executable file.
func Executable(path, target string) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s not found: run `make %s`", path, target)
	}
	return nil
}

// NeedExecutables fails the test when one of paths is not an executable
// file, naming the make target that builds it.
func NeedExecutables(t testing.TB, target string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := Executable(p, target); err != nil {
			t.Fatal(err)
		}
	}
}
