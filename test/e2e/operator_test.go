package e2e

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/netintent/netintent/internal/testenv"
)

// operatorProcess is the built operator binary running as a child process.
type operatorProcess = testenv.Operator

// startOperator runs bin/netintent with the kubeconfig of its own user and
// waits until /readyz answers. The process is stopped when the test ends,
// if it is still running, and its log is printed if the test failed.
func startOperator(t *testing.T, p paths, kubeconfig string, extraArgs ...string) *operatorProcess {
	t.Helper()
	return runOperator(t, p, testenv.OperatorOptions{Binary: p.operator, Kubeconfig: kubeconfig}, extraArgs...)
}

// startOperatorWith is startOperator with the command that runs the
// operator with args made by command: the binary itself, or a container
// runtime that runs it from the image. The operator's listeners are on
// loopback ports of this machine's network namespace.
func startOperatorWith(t *testing.T, p paths, command func(args []string) *exec.Cmd, extraArgs ...string) *operatorProcess {
	t.Helper()
	return runOperator(t, p, testenv.OperatorOptions{Command: command}, extraArgs...)
}

// runOperator runs the operator as leader-elected replica, keeps its whole
// log in bin/e2e for a look after the run, and names the RBAC refusals in
// it if the test failed.
func runOperator(t *testing.T, p paths, o testenv.OperatorOptions, extraArgs ...string) *operatorProcess {
	t.Helper()
	o.Args = append([]string{"--leader-elect", "--leader-election-namespace=" + operatorNamespace}, extraArgs...)
	op := testenv.RunOperator(t, filepath.Join(p.root, "bin", "e2e", "operator.log"), o)
	t.Cleanup(func() {
		if refused := refusals(op); t.Failed() && len(refused) > 0 {
			t.Logf("the operator was refused by RBAC: %s", strings.Join(refused, "; "))
		}
	})
	return op
}

// forbiddenLines are the operator's log lines that report an API request
// refused by RBAC.
func forbiddenLines(op *operatorProcess) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(op.Log()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if forbidden.MatchString(sc.Text()) {
			out = append(out, sc.Text())
		}
	}
	return out
}

var forbidden = regexp.MustCompile(`(?i)forbidden`)

// refusal is what an RBAC refusal says: who may not do what.
var refusal = regexp.MustCompile(`User \\?"[^"\\]+\\?" cannot [a-z]+ resource \\?"[^"\\]+\\?"( in API group \\?"[^"\\]*\\?")?`)

// refusals are the distinct RBAC refusals in the operator's log.
func refusals(op *operatorProcess) []string {
	var out []string
	for _, line := range forbiddenLines(op) {
		for _, m := range refusal.FindAllString(line, -1) {
			m = strings.ReplaceAll(m, `\"`, `"`)
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// checkNoForbidden fails the test if the operator's log reports any request
// refused by RBAC: the generated ClusterRole and the leader-election Role
// must be enough for everything it does.
func checkNoForbidden(t *testing.T, op *operatorProcess) {
	t.Helper()
	if lines := forbiddenLines(op); len(lines) > 0 {
		t.Errorf("the operator was refused by RBAC in %d log lines; the generated role lacks a permission (add it to a +kubebuilder:rbac marker and run make manifests): %s",
			len(lines), strings.Join(refusals(op), "; "))
	}
}
