package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
)

// DualStack is the Service ranges of a test control plane: IPv4 first, so
// that intents may ask for either family or both (ipFamilyPolicy), with
// envtest's IPv4 /24 and an IPv6 /108.
var DualStack = []string{"10.0.0.0/24", "fd00:10:96::/108"}

// Options say what control plane to start.
type Options struct {
	// Root is the project folder; Root() when empty.
	Root string
	// ServiceRanges are the API server's Service ranges, the primary
	// family first; DualStack when empty.
	ServiceRanges []string
	// NoCRDs leaves the CRDs out, for a suite that installs them itself.
	NoCRDs bool
	// ControlPlane is envtest's, for a suite that sets its processes'
	// flags.
	ControlPlane envtest.ControlPlane
	// QPS and Burst raise the client's rate limits when set.
	QPS   float32
	Burst int
}

// ControlPlane is a running kube-apiserver and etcd on loopback.
type ControlPlane struct {
	Env    *envtest.Environment
	Config *rest.Config
	// Client is an admin client with Scheme.
	Client client.Client
	// Scheme knows the built-in kinds and the project's CRDs.
	Scheme *runtime.Scheme
	Root   string
}

// NewScheme is the built-in kinds and the project's CRDs.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Start starts a control plane with the CRDs installed (unless
// opts.NoCRDs), and an admin client.
func Start(opts Options) (*ControlPlane, error) {
	root := opts.Root
	if root == "" {
		var err error
		if root, err = Root(); err != nil {
			return nil, err
		}
	}
	assets := Assets(root)
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if err := Executable(filepath.Join(assets, b), "envtest"); err != nil {
			return nil, err
		}
	}
	cp := &ControlPlane{Scheme: NewScheme(), Root: root}
	ranges := opts.ServiceRanges
	if len(ranges) == 0 {
		ranges = DualStack
	}
	var cfg *rest.Config
	var err error
	// envtest gives the API server a fixed 5 s to make the default
	// namespace once it answers, which a busy machine can miss: a second
	// start is tried then (on fresh etcd unless opts.ControlPlane has one).
	for attempt := 1; ; attempt++ {
		cp.Env = &envtest.Environment{
			BinaryAssetsDirectory: assets,
			Scheme:                cp.Scheme,
			ControlPlane:          opts.ControlPlane,
		}
		if !opts.NoCRDs {
			cp.Env.CRDDirectoryPaths = []string{CRDs(root)}
			cp.Env.ErrorIfCRDPathMissing = true
		}
		cp.Env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", strings.Join(ranges, ","))
		if cfg, err = cp.Env.Start(); err == nil {
			break
		}
		_ = cp.Env.Stop() // whatever did start
		if attempt == 2 || !strings.Contains(err.Error(), "default namespace didn't register") {
			return nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
		}
	}
	if opts.QPS > 0 {
		cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	}
	cp.Config = cfg
	if cp.Client, err = client.New(cfg, client.Options{Scheme: cp.Scheme}); err != nil {
		_ = cp.Env.Stop()
		return nil, err
	}
	return cp, nil
}

// StartT starts a control plane as Start does and stops it when the test
// ends.
func StartT(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	began := time.Now()
	cp, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	t.Logf("control plane up in %s", time.Since(began).Round(time.Millisecond))
	return cp
}

// Main starts a control plane for a package's TestMain, runs the tests
// with it and stops it, and returns the exit code.
func Main(m *testing.M, opts Options, run func(m *testing.M, cp *ControlPlane) int) int {
	cp, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v (make test builds bin/k8s)\n", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
	}()
	if run == nil {
		return m.Run()
	}
	return run(m, cp)
}

// Stop stops the API server and etcd.
func (cp *ControlPlane) Stop() error { return cp.Env.Stop() }

// Kubeconfig adds a user in groups and returns a kubeconfig with its
// identity.
func (cp *ControlPlane) Kubeconfig(name string, groups ...string) ([]byte, error) {
	u, err := cp.Env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding the user %s: %w", name, err)
	}
	return u.KubeConfig()
}

// AdminKubeconfig is Kubeconfig for a member of system:masters.
func (cp *ControlPlane) AdminKubeconfig(name string) ([]byte, error) {
	return cp.Kubeconfig(name, "system:masters")
}

// WriteKubeconfig writes data to dir/kubeconfig and returns its path.
func WriteKubeconfig(dir string, data []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// AdminKubeconfigT writes an admin's kubeconfig to a folder of the test and
// returns its path.
func (cp *ControlPlane) AdminKubeconfigT(t testing.TB, name string) string {
	t.Helper()
	data, err := cp.AdminKubeconfig(name)
	if err != nil {
		t.Fatal(err)
	}
	path, err := WriteKubeconfig(t.TempDir(), data)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Namespace makes a namespace for one test. Without a namespace controller
// namespaces are never finalized, so its name is generated.
func (cp *ControlPlane) Namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{}
	ns.GenerateName = "test-"
	if err := cp.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}
