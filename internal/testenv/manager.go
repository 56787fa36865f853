package testenv

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// ManagerOptions are a test manager's options: scheme, and no metrics or
// health listeners.
func ManagerOptions(scheme *runtime.Scheme) ctrl.Options {
	return ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}
}

// Background runs start until the returned stop is called, which returns
// what start returned.
func Background(start func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// RunManager runs mgr (the operator in process) until the returned function
// is called or the test ends, whichever comes first, and fails the test if
// it returns an error.
func RunManager(t testing.TB, mgr manager.Manager) (stop func()) {
	t.Helper()
	return Run(t, "the manager", mgr.Start, nil)
}

// Run runs start until the returned function is called or the test ends,
// and waits for ready to close when it is not nil, failing the test if
// start returns first.
func Run(t testing.TB, what string, start func(context.Context) error, ready <-chan struct{}) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	t.Cleanup(stop)
	if ready == nil {
		return stop
	}
	select {
	case <-ready:
	case err := <-done:
		stopped = true
		t.Fatalf("%s stopped: %v", what, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not ready after 30 s", what)
	}
	return stop
}
