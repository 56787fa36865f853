// Command netintent-local runs the operator for `make run`. With KUBECONFIG
// naming a cluster it runs the operator against that cluster. Otherwise it
// starts a local control plane (kube-apiserver and etcd from bin/k8s, on
// loopback), installs the CRDs, writes a kubeconfig for kubectl, runs the
// operator against it, and on Ctrl-C stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netintent-local:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run() (int, error) {
	root := flag.String("root", ".", "The project folder (holds bin/ and config/).")
	flag.Parse()
	operatorArgs := flag.Args()

	rootDir, err := filepath.Abs(*root)
	if err != nil {
		return 1, err
	}
	operator := filepath.Join(rootDir, "bin", "netintent")
	kubeconfig := filepath.Join(rootDir, "bin", "local", "kubeconfig")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if kc := os.Getenv("KUBECONFIG"); kc != "" && kc != kubeconfig {
		fmt.Fprintf(os.Stderr, "Running the operator against the cluster of KUBECONFIG=%s\n", kc)
		return runOperator(ctx, operator, os.Environ(), operatorArgs)
	}

	env := &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(rootDir, "bin", "k8s"),
		CRDDirectoryPaths:     []string{filepath.Join(rootDir, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	fmt.Fprintln(os.Stderr, "Starting a local control plane (kube-apiserver and etcd on 127.0.0.1)...")
	if _, err := env.Start(); err != nil {
		_ = env.Stop() // whatever did start
		return 1, fmt.Errorf("starting the local control plane (run `make envtest` first): %w", err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
		}
		_ = os.Remove(kubeconfig)
		fmt.Fprintln(os.Stderr, "Local control plane stopped.")
	}()

	admin, err := env.AddUser(envtest.User{Name: "local-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return 1, fmt.Errorf("adding the local admin user: %w", err)
	}
	config, err := admin.KubeConfig()
	if err != nil {
		return 1, fmt.Errorf("making a kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o700); err != nil {
		return 1, err
	}
	if err := os.WriteFile(kubeconfig, config, 0o600); err != nil {
		return 1, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	fmt.Fprintf(os.Stderr, "\nLocal control plane is up. In another shell:\n\n  export KUBECONFIG=%s\n  kubectl get networkintents -A\n\nDNS answers on 127.0.0.1:5353 (dig @127.0.0.1 -p 5353 ...). Ctrl-C stops everything.\n\n", kubeconfig)

	args := append([]string{
		"--dns-listen-address=127.0.0.1:5353",
		"--metrics-bind-address=127.0.0.1:8443",
		"--health-probe-bind-address=127.0.0.1:8081",
	}, operatorArgs...)
	environ := append(os.Environ(), "KUBECONFIG="+kubeconfig)
	return runOperator(ctx, operator, environ, args)
}

// runOperator runs the operator until it exits or ctx ends, then stops it
// with SIGTERM (SIGKILL after 15 s) and returns its exit code.
func runOperator(ctx context.Context, operator string, environ, args []string) (int, error) {
	cmd := exec.Command(operator, args...)
	cmd.Env = environ
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// The operator dies with this process even if this process is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("starting %s (run `make build`): %w", operator, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err), err
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if exitCode(err) == 0 || isSignal(err, syscall.SIGTERM) {
			return 0, nil
		}
		return exitCode(err), err
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		return 1, errors.New("the operator did not stop within 15s of SIGTERM; killed it")
	}
}

func exitCode(err error) int {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func isSignal(err error, sig syscall.Signal) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
