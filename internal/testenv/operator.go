package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OperatorOptions say how to run the built operator.
type OperatorOptions struct {
	// Binary is the operator's executable; OperatorBinary(Root()) when
	// empty.
	Binary string
	// Kubeconfig is the path of the operator's only kubeconfig (no
	// in-cluster config, no user's ~/.kube/config). When empty, the
	// operator finds its cluster as it would (KUBECONFIG of Env or of this
	// process).
	Kubeconfig string
	// HealthAddr, MetricsAddr and DNSAddr are the operator's listeners; a
	// free loopback address each when empty. PprofAddr is its profiling
	// endpoint, off when empty.
	HealthAddr, MetricsAddr, DNSAddr, PprofAddr string
	// Args come after the listener flags, and win over them.
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Command runs the operator with args another way (pinned to CPUs, or
	// from its image in a container); exec.Command(Binary, args...) when
	// nil.
	Command func(args []string) *exec.Cmd
	// Output gets a copy of the operator's log.
	Output io.Writer
	// ParentDeathSignal is what the operator gets if this process dies
	// first; SIGKILL when zero.
	ParentDeathSignal syscall.Signal
	// ReadyTimeout is how long to wait for /readyz to answer 200; 60 s
	// when zero, no wait when negative.
	ReadyTimeout time.Duration
}

// Operator is the built operator running as a child process.
type Operator struct {
	*Process
	HealthAddr, MetricsAddr, DNSAddr, PprofAddr string
}

// StartOperator runs the operator and waits until /readyz answers.
func StartOperator(o OperatorOptions) (*Operator, error) {
	op := &Operator{HealthAddr: o.HealthAddr, MetricsAddr: o.MetricsAddr, DNSAddr: o.DNSAddr, PprofAddr: o.PprofAddr}
	// The listeners not given get ports of their own, all different: the
	// operator fails to start when two of its listeners share one.
	free, err := FreeAddrs(3)
	if err != nil {
		return nil, err
	}
	for i, a := range []*string{&op.HealthAddr, &op.MetricsAddr, &op.DNSAddr} {
		if *a == "" {
			*a = free[i]
		}
	}
	args := []string{
		"--health-probe-bind-address=" + op.HealthAddr,
		"--metrics-bind-address=" + op.MetricsAddr,
		"--dns-listen-address=" + op.DNSAddr,
	}
	if op.PprofAddr != "" {
		args = append(args, "--pprof-bind-address="+op.PprofAddr)
	}
	args = append(args, o.Args...)
	var cmd *exec.Cmd
	if o.Command != nil {
		cmd = o.Command(args)
	} else {
		bin := o.Binary
		if bin == "" {
			root, err := Root()
			if err != nil {
				return nil, err
			}
			bin = OperatorBinary(root)
		}
		if err := Executable(bin, "build"); err != nil {
			return nil, err
		}
		cmd = exec.Command(bin, args...)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, o.Env...)
	if o.Kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+o.Kubeconfig, "KUBERNETES_SERVICE_HOST=", "HOME="+filepath.Dir(o.Kubeconfig))
	}
	sig := o.ParentDeathSignal
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: sig}
	p, err := StartProcess("the operator", cmd, o.Output)
	if err != nil {
		return nil, err
	}
	op.Process = p
	timeout := o.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if timeout > 0 {
		if err := op.WaitReady(timeout); err != nil {
			_ = op.Stop(5 * time.Second)
			return nil, err
		}
	}
	return op, nil
}

// WaitReady waits until the operator's /readyz answers 200.
func (op *Operator) WaitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return Poll(context.Background(), 100*time.Millisecond, timeout, "the operator's /readyz", func() error {
		if err := op.Alive(); err != nil {
			return err
		}
		resp, err := hc.Get("http://" + op.HealthAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s", resp.Status)
		}
		return nil
	})
}

// LogTail is how many lines of the operator's log a failed test prints.
const LogTail = 60

// RunOperator starts the operator as StartOperator does, and when the test
// ends stops it, writes its whole log to logPath (when set) and prints the
// end of it if the test failed.
func RunOperator(t testing.TB, logPath string, o OperatorOptions) *Operator {
	t.Helper()
	op, err := StartOperator(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = op.Stop(15 * time.Second)
		where := ""
		if logPath != "" && op.SaveLog(logPath) == nil {
			where = " (all of it in " + logPath + ")"
		}
		if t.Failed() {
			t.Logf("operator log, last %d lines%s:\n%s", LogTail, where, op.Tail(LogTail))
		}
	})
	t.Logf("started %s (pid %d)", strings.Join(op.Cmd.Args, " "), op.Pid())
	return op
}
