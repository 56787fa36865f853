package e2e

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
)

// intentCluster is a local control plane with the CRDs installed from
// config/crd, the operator's namespace and a test's own, and clients of an
// identity of the test's for reading and writing intents.
type intentCluster struct {
	*controlPlane
	client    client.Client
	clientset kubernetes.Interface
}

// startIntentCluster starts one; user names the test's identity.
func startIntentCluster(t *testing.T, p paths, user, namespace string) intentCluster {
	t.Helper()
	cp := startControlPlane(t, p)
	k := cp.adminKubectl
	k.must(t, "", "apply", "--server-side", "-k", filepath.Join(p.configDir, "crd"))
	k.waitEstablished(t, "networkintents.networking.netintent.io", "addresspools.networking.netintent.io")
	k.must(t, "", "create", "namespace", operatorNamespace)
	k.must(t, "", "create", "namespace", namespace)
	u, err := cp.env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := u.Config()
	// The test's own requests should not wait on client-go's default of 5
	// a second.
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return intentCluster{controlPlane: cp, client: c, clientset: cs}
}
