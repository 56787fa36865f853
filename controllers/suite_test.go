package controllers

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// The package's one control plane and a manager running the reconcilers
// under test.
var (
	testEnv    *testenv.ControlPlane
	k8sClient  client.Client
	testScheme = testenv.NewScheme()
	suiteCtx   context.Context
	// suiteCache is the suite manager's cache, for tests that look at
	// what it holds.
	suiteCache cache.Cache
)

func TestMain(m *testing.M) {
	// The probing tests run this binary as the server of each test host.
	testnet.MaybeServe()
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		logf.SetLogger(logr.Discard())
	}
	os.Exit(testenv.Main(m, testenv.Options{}, runSuite))
}

func runSuite(m *testing.M, cp *testenv.ControlPlane) int {
	testEnv, k8sClient, testScheme = cp, cp.Client, cp.Scheme
	mo := testenv.ManagerOptions(testScheme)
	mo.Cache = CacheOptions()
	mgr, err := ctrl.NewManager(cp.Config, mo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	suiteCtx, suiteCache = ctx, mgr.GetCache()
	if err := setupReconcilers(mgr); err != nil {
		fmt.Fprintf(os.Stderr, "setup: %v\n", err)
		return 1
	}
	stop := testenv.Background(mgr.Start)
	code := m.Run()
	cancel()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		return 1
	}
	return code
}
