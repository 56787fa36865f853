package dataplane

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/internal/testenv"
)

// cluster is a local control plane with the CRDs installed, the built
// operator running against it, and the fake upstream resolver it forwards
// ExternalName targets to.
type cluster struct {
	kubeProxy string
	admin     client.Client
	// proxyKubeconfig is kube-proxy's identity (system:kube-proxy).
	proxyKubeconfig []byte
	operator        *testenv.Operator
	upstream        *testenv.Upstream
}

// startCluster starts everything the dataplane tests share and stops it when
// the test ends. A binary that is missing fails the test with the make target
// that builds it.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	root := testenv.RootT(t)
	c := &cluster{kubeProxy: filepath.Join(testenv.Assets(root), "kube-proxy")}
	testenv.NeedExecutables(t, "envtest build` (or `make test-e2e`, which builds them", c.kubeProxy, testenv.OperatorBinary(root))
	// Dual-stack, IPv4 first: the walk reaches backends over both families.
	cp := testenv.StartT(t, testenv.Options{Root: root, ServiceRanges: []string{"10.0.0.0/24", serviceRange6.String()}})
	c.admin = cp.Client
	// The API server's bootstrap policy binds system:node-proxier, all
	// kube-proxy needs, to this user.
	var err error
	if c.proxyKubeconfig, err = cp.Kubeconfig("system:kube-proxy"); err != nil {
		t.Fatal(err)
	}
	c.upstream = testenv.StartUpstream(t, &testenv.Upstream{})
	c.operator = testenv.RunOperator(t, filepath.Join(root, "bin", "dataplane", "operator.log"), testenv.OperatorOptions{
		Kubeconfig: cp.AdminKubeconfigT(t, "dataplane-operator"),
		Args:       []string{"--dns-upstreams=" + c.upstream.Addr},
	})
	return c
}

// resolveA asks the operator's DNS server for name's addresses and returns
// the CNAME target (if any) and the A records of the answer.
func resolveA(server, name string) (string, []string, error) {
	c := &dns.Client{Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return "", nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return "", nil, fmt.Errorf("%s: rcode %s", name, dns.RcodeToString[r.Rcode])
	}
	var cname string
	var as []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.CNAME:
			cname = rr.Target
		case *dns.A:
			as = append(as, rr.A.String())
		}
	}
	return cname, as, nil
}
