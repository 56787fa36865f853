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

	"github.com/netintent/netintent/internal/testenv"
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
	root := testenv.RootT(t)
	assets := testenv.Assets(root)
	p := paths{
		root:      root,
		assets:    assets,
		kubectl:   filepath.Join(assets, "kubectl"),
		operator:  testenv.OperatorBinary(root),
		configDir: filepath.Join(root, "config"),
	}
	testenv.NeedExecutables(t, "envtest` (or `make test-e2e`, which builds it", filepath.Join(assets, "kube-apiserver"), filepath.Join(assets, "etcd"), p.kubectl)
	testenv.NeedExecutables(t, "build` (or `make test-e2e`, which builds it", p.operator)
	return p
}

// controlPlane is a local kube-apiserver and etcd with an admin identity.
type controlPlane struct {
	env   *envtest.Environment
	admin client.Client
	// adminKubectl runs kubectl as a member of system:masters.
	adminKubectl kubectl
}

// startControlPlane starts kube-apiserver and etcd on loopback, dual-stack
// as make run's (the dual-stack sample needs both families), with no CRDs:
// the kustomize install is what installs them. It stops them when the test
// ends.
func startControlPlane(t *testing.T, p paths) *controlPlane {
	t.Helper()
	cp := testenv.StartT(t, testenv.Options{Root: p.root, NoCRDs: true})
	admin, err := cp.Env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("adding the admin user: %v", err)
	}
	return &controlPlane{
		env:          cp.Env,
		admin:        cp.Client,
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
		testenv.Await(t, "CRD "+crd+" established", 30*time.Second, func() error {
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
