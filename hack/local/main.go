// Command netintent-local runs the operator for `make run`. With KUBECONFIG
// naming a cluster it runs the operator against that cluster. Otherwise it
// starts a local control plane (kube-apiserver and etcd from bin/k8s, on
// loopback), installs the CRDs, writes a kubeconfig for kubectl, runs the
// operator against it, and on Ctrl-C stops everything it started.
//
// With -node (Linux, root) it also makes one node on this machine: network
// namespaces with kube-proxy in nftables mode and two backend hosts (see
// internal/testnet), so that Services of the local control plane carry
// traffic. Ctrl-C removes every namespace, link and route it made.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/netintent/netintent/internal/manifests"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// serviceRange is the local control plane's IPv4 Service range, kubeadm's
// default: room for about a million Services.
var serviceRange = netip.MustParsePrefix("10.96.0.0/12")

// serviceRange6 is its IPv6 Service range: the control plane is
// dual-stack, IPv4 first, so that intents may ask for either family or
// both (ipFamilyPolicy). A /108 holds about a million Services too, the
// most the API server allocates from one range.
var serviceRange6 = netip.MustParsePrefix("fd00:10:96::/108")

func main() {
	// The node's backend hosts are this binary, run inside their
	// namespaces.
	testnet.MaybeServe()
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
	withNode := flag.Bool("node", false, "Also make a node on this machine (Linux, root): kube-proxy in nftables mode in a network namespace, with two backend hosts behind it.")
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

	if kc := os.Getenv("KUBECONFIG"); kc != "" && kc != kubeconfig && !*withNode {
		fmt.Fprintf(os.Stderr, "Running the operator against the cluster of KUBECONFIG=%s\n", kc)
		// The operator's own listener defaults, on every address.
		return runOperator(ctx, testenv.OperatorOptions{
			Binary:      operator,
			DNSAddr:     ":5353",
			MetricsAddr: ":8443",
			HealthAddr:  ":8081",
			Args:        operatorArgs,
		})
	}

	fmt.Fprintln(os.Stderr, "Starting a local control plane (kube-apiserver and etcd on 127.0.0.1)...")
	// envtest's own default Service range is a /24, which is full at 253
	// Services.
	cp, err := testenv.Start(testenv.Options{Root: rootDir, ServiceRanges: []string{serviceRange.String(), serviceRange6.String()}})
	if err != nil {
		return 1, fmt.Errorf("%w (run `make envtest` first)", err)
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
		}
		_ = os.Remove(kubeconfig)
		fmt.Fprintln(os.Stderr, "Local control plane stopped.")
	}()
	if err := manifests.InstallAdmissionPolicy(ctx, cp.Client, rootDir); err != nil {
		return 1, fmt.Errorf("installing the admission policy: %w", err)
	}
	config, err := cp.AdminKubeconfig("local-admin")
	if err != nil {
		return 1, fmt.Errorf("making a kubeconfig: %w", err)
	}
	if _, err := testenv.WriteKubeconfig(filepath.Dir(kubeconfig), config); err != nil {
		return 1, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	fmt.Fprintf(os.Stderr, "\nLocal control plane is up. In another shell:\n\n  export KUBECONFIG=%s\n  kubectl get networkintents -A\n\nDNS answers on 127.0.0.1:5353 (dig @127.0.0.1 -p 5353 ...). Ctrl-C stops everything.\n\n", kubeconfig)

	if *withNode {
		node, err := startNode(ctx, cp, rootDir)
		if node != nil {
			defer func() {
				if err := node.Close(); err != nil {
					fmt.Fprintln(os.Stderr, "removing the node:", err)
				}
				fmt.Fprintln(os.Stderr, "Node removed.")
			}()
		}
		if err != nil {
			return 1, err
		}
	}

	return runOperator(ctx, testenv.OperatorOptions{
		Binary:      operator,
		Kubeconfig:  kubeconfig,
		DNSAddr:     "127.0.0.1:5353",
		MetricsAddr: "127.0.0.1:8443",
		HealthAddr:  "127.0.0.1:8081",
		Args:        operatorArgs,
	})
}

// startNode makes the node, starts its backends and writes a demo intent
// over them, and prints how to send traffic through it.
func startNode(ctx context.Context, cp *testenv.ControlPlane, rootDir string) (*testnet.Node, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("-node makes network namespaces: run as root")
	}
	c := cp.Client
	// The API server's bootstrap policy gives this user what kube-proxy
	// needs.
	proxyConfig, err := cp.Kubeconfig("system:kube-proxy")
	if err != nil {
		return nil, err
	}
	localDir := filepath.Join(rootDir, "bin", "local")
	logFile, err := os.Create(filepath.Join(localDir, "kube-proxy.log"))
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "Making a node: network namespaces, kube-proxy in nftables mode, two backend hosts...")
	node, err := testnet.StartNode(ctx, testnet.NodeConfig{
		KubeProxy:  filepath.Join(rootDir, "bin", "k8s", "kube-proxy"),
		Mode:       testnet.ProxyModeNFTables,
		Kubeconfig: proxyConfig,
		Client:     c,
		Backends:   2,
		// The local control plane's Service ranges, and the ranges of the
		// sample AddressPool.
		SinkPrefixes: []netip.Prefix{serviceRange, serviceRange6, netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")},
		Log:          logFile,
	})
	if err != nil {
		return node, fmt.Errorf("making the node (kube-proxy log in %s): %w", logFile.Name(), err)
	}
	for _, h := range node.Backends {
		if err := h.Start(ctx); err != nil {
			return node, err
		}
	}
	demo := filepath.Join(localDir, "demo.yaml")
	if err := os.WriteFile(demo, []byte(demoIntent(node)), 0o644); err != nil {
		return node, err
	}
	b0, b1 := node.Backends[0], node.Backends[1]
	fmt.Fprintf(os.Stderr, `Node %[1]s is up: network namespace %[2]s, node IP %[3]s, kube-proxy in nftables mode (log: %[4]s).
Backends behind it answer GET /whoami with their address: %[5]s (namespace %[6]s) and %[7]s (namespace %[8]s).

  kubectl apply -f %[9]s      # a ClusterIP intent over both backends, probed every second
  kubectl get networkintent demo -w
  CLUSTER_IP=$(kubectl get service demo -o jsonpath='{.spec.clusterIP}')
  ip netns exec %[2]s curl -s http://$CLUSTER_IP/whoami; echo

Kill a backend and watch it leave traffic:

  kill $(ip netns pids %[8]s)
  for i in $(seq 20); do ip netns exec %[2]s curl -s --max-time 1 http://$CLUSTER_IP/whoami; echo; sleep 0.5; done

`, node.Name, node.Namespace, node.IP, logFile.Name(), b0.IP, b0.Namespace, b1.IP, b1.Namespace, demo)
	return node, nil
}

// demoIntent is a ClusterIP intent over the node's backends.
func demoIntent(node *testnet.Node) string {
	return fmt.Sprintf(`# A ClusterIP intent over the backends of the make run-node node.
apiVersion: networking.netintent.io/v1alpha1
kind: NetworkIntent
metadata:
  name: demo
  namespace: default
spec:
  exposure: ClusterIP
  backends:
  - address: %s
  - address: %s
  ports:
  - name: http
    port: 80
    targetPort: %d
  healthCheck:
    http:
      path: /healthz
      port: %d
    period: 1s
    timeout: 500ms
    unhealthyThreshold: 2
`, node.Backends[0].IP, node.Backends[1].IP, testnet.HTTPPort, testnet.HTTPPort)
}

// runOperator runs the operator, its log on this terminal, until it exits
// or ctx ends, then stops it with SIGTERM (SIGKILL after 15 s) and returns
// its exit code. The operator gets SIGTERM if this process dies first.
func runOperator(ctx context.Context, o testenv.OperatorOptions) (int, error) {
	o.Output, o.ParentDeathSignal, o.ReadyTimeout = os.Stderr, syscall.SIGTERM, -1
	op, err := testenv.StartOperator(o)
	if err != nil {
		return 1, err
	}
	select {
	case <-op.Done():
		return exitCode(op.Err()), op.Err()
	case <-ctx.Done():
	}
	err = op.Stop(15 * time.Second)
	switch {
	case errors.Is(err, testenv.ErrKilled):
		return 1, fmt.Errorf("the operator did not stop within 15s of SIGTERM; killed it: %w", err)
	case err == nil || testenv.Signalled(err, syscall.SIGTERM):
		return 0, nil
	}
	return exitCode(err), err
}

// exitCode is the operator's exit status, 1 when a signal ended it.
func exitCode(err error) int {
	if code := testenv.ExitCode(err); code >= 0 {
		return code
	}
	return 1
}
