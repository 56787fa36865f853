package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netintent/netintent/internal/testnet"
)

// operatorProcess is the built operator binary running as a child process.
type operatorProcess struct {
	cmd  *exec.Cmd
	log  *testnet.SyncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // what Wait returned; read after done is closed

	healthAddr  string
	metricsAddr string
	dnsAddr     string
}

// startOperator runs bin/netintent with the kubeconfig of its own user and
// waits until /readyz answers. The process is killed when the test ends, if
// it is still running, and its log is printed if the test failed.
func startOperator(t *testing.T, p paths, kubeconfig string, extraArgs ...string) *operatorProcess {
	t.Helper()
	home := t.TempDir()
	return startOperatorWith(t, p, func(args []string) *exec.Cmd {
		cmd := exec.Command(p.operator, args...)
		// Only this kubeconfig: no in-cluster config, no user's ~/.kube/config.
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "KUBERNETES_SERVICE_HOST=", "HOME="+home)
		return cmd
	}, extraArgs...)
}

// startOperatorWith is startOperator with the command that runs the
// operator with args made by command: the binary itself, or a container
// runtime that runs it from the image. The operator's listeners are on
// loopback ports of this machine's network namespace.
func startOperatorWith(t *testing.T, p paths, command func(args []string) *exec.Cmd, extraArgs ...string) *operatorProcess {
	t.Helper()
	op := &operatorProcess{
		log:         &testnet.SyncBuffer{},
		done:        make(chan struct{}),
		healthAddr:  freeLoopbackAddr(t),
		metricsAddr: freeLoopbackAddr(t),
		dnsAddr:     freeLoopbackAddr(t),
	}
	args := append([]string{
		"--leader-elect",
		"--leader-election-namespace=" + operatorNamespace,
		"--health-probe-bind-address=" + op.healthAddr,
		"--metrics-bind-address=" + op.metricsAddr,
		"--dns-listen-address=" + op.dnsAddr,
	}, extraArgs...)
	op.cmd = command(args)
	op.cmd.Stdout, op.cmd.Stderr = op.log, op.log
	// The operator dies with the test binary even if the test is killed
	// before its cleanups run.
	op.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := op.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", op.cmd.Path, err)
	}
	go func() {
		op.err = op.cmd.Wait()
		close(op.done)
	}()
	t.Cleanup(func() {
		if !op.exited() {
			_ = op.cmd.Process.Kill()
			<-op.done
		}
		// The whole log stays in bin/e2e for a look after the run.
		logPath := filepath.Join(p.root, "bin", "e2e", "operator.log")
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err == nil {
			_ = os.WriteFile(logPath, []byte(op.log.String()), 0o644)
		}
		if t.Failed() {
			if refused := op.refusals(); len(refused) > 0 {
				t.Logf("the operator was refused by RBAC: %s", strings.Join(refused, "; "))
			}
			t.Logf("operator log, last %d lines (all of it in %s):\n%s", logTail, logPath, op.tail(logTail))
		}
	})
	t.Logf("started %s (pid %d)", strings.Join(op.cmd.Args, " "), op.cmd.Process.Pid)

	client := &http.Client{Timeout: 2 * time.Second}
	eventually(t, 60*time.Second, "operator /readyz", func() error {
		if op.exited() {
			t.Fatalf("the operator exited before it was ready: %v", op.err)
		}
		resp, err := client.Get("http://" + op.healthAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s", resp.Status)
		}
		return nil
	})
	return op
}

func (op *operatorProcess) exited() bool {
	select {
	case <-op.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and returns the exit error, or an error if the process
// is still running after timeout.
func (op *operatorProcess) stop(timeout time.Duration) error {
	if err := op.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("sending SIGTERM: %w", err)
	}
	select {
	case <-op.done:
		return op.err
	case <-time.After(timeout):
		return fmt.Errorf("still running %s after SIGTERM", timeout)
	}
}

// forbiddenLines are the operator's log lines that report an API request
// refused by RBAC.
func (op *operatorProcess) forbiddenLines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(op.log.String()))
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
func (op *operatorProcess) refusals() []string {
	var out []string
	for _, line := range op.forbiddenLines() {
		for _, m := range refusal.FindAllString(line, -1) {
			m = strings.ReplaceAll(m, `\"`, `"`)
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// logTail is how many lines of the operator's log a failure prints.
const logTail = 60

// tail is the last n lines of the operator's log, each cut to a readable
// length (stack traces make them long).
func (op *operatorProcess) tail(n int) string {
	lines := strings.Split(strings.TrimRight(op.log.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + " ..."
		}
	}
	return strings.Join(lines, "\n")
}

// checkNoForbidden fails the test if the operator's log reports any request
// refused by RBAC: the generated ClusterRole and the leader-election Role
// must be enough for everything it does.
func checkNoForbidden(t *testing.T, op *operatorProcess) {
	t.Helper()
	if lines := op.forbiddenLines(); len(lines) > 0 {
		t.Errorf("the operator was refused by RBAC in %d log lines; the generated role lacks a permission (add it to a +kubebuilder:rbac marker and run make manifests): %s",
			len(lines), strings.Join(op.refusals(), "; "))
	}
}

// freeLoopbackAddr returns 127.0.0.1:<port> with a port that is free for
// both TCP and UDP at the time of the call.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return ""
}

// exitCode is the process's exit status, or -1 if a signal ended it.
func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
