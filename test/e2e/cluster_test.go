package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// paths locates what the suite needs in the project folder.
type paths struct {
	root      string // the project folder
	assets    string // kube-apiserver, etcd and kubectl
	kubectl   string
	operator  string // the built operator binary
	configDir string
}

// findPaths resolves the project's binaries and fails, with the make target
// to run, when one is missing.
func findPaths(t *testing.T) paths {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s")
	}
	p := paths{
		root:      root,
		assets:    assets,
		kubectl:   filepath.Join(assets, "kubectl"),
		operator:  filepath.Join(root, "bin", "netintent"),
		configDir: filepath.Join(root, "config"),
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if !isExecutable(filepath.Join(assets, b)) {
			t.Fatalf("%s not found in %s: run `make envtest` (or `make test-e2e`, which builds it)", b, assets)
		}
	}
	if !isExecutable(p.operator) {
		t.Fatalf("%s not found: run `make build` (or `make test-e2e`, which builds it)", p.operator)
	}
	return p
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// controlPlane is a local kube-apiserver and etcd with an admin identity.
type controlPlane struct {
	env   *envtest.Environment
	admin client.Client
	// adminKubectl runs kubectl as a member of system:masters.
	adminKubectl kubectl
}

// startControlPlane starts kube-apiserver and etcd on loopback with no CRDs:
// the kustomize install is what installs them. It stops them when the test
// ends.
func startControlPlane(t *testing.T, p paths) *controlPlane {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: p.assets}
	// Dual-stack, as make run's: the dual-stack sample needs both families.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/24,fd00:10:96::/108")
	start := time.Now()
	if _, err := env.Start(); err != nil {
		_ = env.Stop() // whatever did start
		t.Fatalf("starting the local control plane from %s: %v", p.assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the local control plane: %v", err)
		}
	})
	t.Logf("control plane up in %s", time.Since(start).Round(time.Millisecond))

	admin, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("adding the admin user: %v", err)
	}
	c, err := client.New(admin.Config(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &controlPlane{
		env:          env,
		admin:        c,
		adminKubectl: newKubectl(t, p.kubectl, admin),
	}
}

// kubectl runs the real kubectl with one identity's kubeconfig.
type kubectl struct {
	bin        string
	kubeconfig string
	home       string // keeps kubectl's discovery cache out of the user's home
}

// newKubectl writes a kubeconfig for user and returns a kubectl that uses it.
func newKubectl(t *testing.T, bin string, user *envtest.AuthenticatedUser) kubectl {
	t.Helper()
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("making a kubeconfig: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return kubectl{bin: bin, kubeconfig: path, home: dir}
}

// result is what one kubectl run printed.
type result struct {
	stdout, stderr string
	err            error
}

// run runs kubectl with args and stdin as its input, and kills it after two
// minutes (kubectl wait has its own, shorter, --timeout).
func (k kubectl) run(stdin string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig, "HOME="+k.home)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errOut.String(), err: err}
}

// must runs kubectl and fails the test if it fails.
func (k kubectl) must(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := k.run(stdin, args...)
	if r.err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

// waitEstablished waits until the API server serves each CRD. kubectl wait
// --for=condition=Established fails at once, rather than waiting, when it
// reads a CRD whose status has no conditions yet, as a CRD just applied can
// be; so the condition is polled here.
func (k kubectl) waitEstablished(t *testing.T, crds ...string) {
	t.Helper()
	for _, crd := range crds {
		eventually(t, 30*time.Second, "CRD "+crd+" established", func() error {
			r := k.run("", "get", "crd", crd, "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
			if r.err != nil {
				return fmt.Errorf("%v: %s", r.err, r.stderr)
			}
			if strings.TrimSpace(r.stdout) != "True" {
				return fmt.Errorf("Established is %q", r.stdout)
			}
			return nil
		})
	}
}

// getJSON runs `kubectl get ... -o json` and decodes the output into v.
func (k kubectl) getJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := k.must(t, "", append(append([]string{"get"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("decoding kubectl get %s: %v", strings.Join(args, " "), err)
	}
}

// warnings are the "Warning:" lines kubectl printed on stderr.
func warnings(stderr string) []string {
	var out []string
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(strings.TrimSpace(line), "Warning:") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// eventually runs check until it returns nil, and fails the test with the
// last error when timeout passes first.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}
