package e2e

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

const (
	// operatorNamespace is where config/default installs the operator.
	operatorNamespace = "netintent-system"
	// installServiceAccount is the operator's identity in the install.
	installServiceAccount = "netintent-controller-manager"
	// managerRole is the ClusterRole generated from the RBAC markers.
	managerRole = "netintent-manager"
	// operatorUser is the identity the operator runs as in this suite.
	operatorUser = "netintent-e2e-operator"
	// samplesNamespace is where the samples are applied.
	samplesNamespace = "netintent-e2e"
	// partOf selects what config/default installs.
	partOf = "app.kubernetes.io/part-of=netintent"
)

// TestInstallAndRun walks the install path of the README against a local
// control plane, one step after another; a step that fails stops the walk.
func TestInstallAndRun(t *testing.T) {
	p := findPaths(t)
	began := time.Now()
	cp := startControlPlane(t, p)
	k := cp.adminKubectl

	step(t, "install with kustomize into a restricted namespace", func(t *testing.T) {
		installDefault(t, p, k)
	})
	step(t, "the manager's pods pass Pod Security restricted", func(t *testing.T) {
		checkManagerPodSecurity(t, k)
	})
	step(t, "a non-compliant workload is warned about and refused", func(t *testing.T) {
		checkPodSecurityCanFail(t, k)
	})
	step(t, "the install's RBAC is least privilege", func(t *testing.T) {
		checkInstalledRBAC(t, k)
	})
	step(t, "the other kustomizations render and apply", func(t *testing.T) {
		checkOptionalKustomizations(t, p, k)
	})
	step(t, "the admission policy that sets the finalizer applies", func(t *testing.T) {
		installAdmissionPolicy(t, p, k)
	})
	step(t, "the readiness gate is added to pods only while the operator is available", func(t *testing.T) {
		checkReadinessGatePolicy(t, k)
	})

	var opUser *envtest.AuthenticatedUser
	step(t, "an operator user bound like the install's ServiceAccount", func(t *testing.T) {
		opUser = addOperatorUser(t, cp)
	})
	// The kubeconfig lives as long as the whole walk.
	opKubeconfig := newKubectl(t, p.kubectl, opUser).kubeconfig

	upstream := startFakeUpstream(t, "example.com.", net.ParseIP("192.0.2.53"))
	op := startOperator(t, p, opKubeconfig, "--dns-upstreams="+upstream.Addr)
	var leaseName string
	step(t, "the operator becomes leader", func(t *testing.T) {
		leaseName = waitForLeader(t, cp.admin)
	})

	var intents []v1alpha1.NetworkIntent
	step(t, "a gated pod that no intent checks is released", func(t *testing.T) {
		checkGatedPodReleased(t, k)
	})
	step(t, "the samples apply and become ready", func(t *testing.T) {
		intents = applySamples(t, p, k, op)
	})
	step(t, "the samples' Services and EndpointSlices", func(t *testing.T) {
		checkServices(t, k, intents)
	})
	step(t, "DNS answers for the samples", func(t *testing.T) {
		checkDNS(t, p, k, op, upstream, intents)
	})
	step(t, "metrics are served to authorised callers only", func(t *testing.T) {
		checkMetrics(t, k, op)
	})
	step(t, "deleting the samples removes their Services", func(t *testing.T) {
		deleteSamples(t, p, k)
	})
	step(t, "the operator was never refused by RBAC", func(t *testing.T) {
		checkNoForbidden(t, op)
	})
	step(t, "SIGTERM stops the operator cleanly and releases leadership", func(t *testing.T) {
		stopOperator(t, cp.admin, op, leaseName)
		checkNoForbidden(t, op)
	})
	step(t, "uninstall with kustomize", func(t *testing.T) {
		uninstall(t, p, k)
	})
	t.Logf("end-to-end walk took %s", time.Since(began).Round(time.Millisecond))
}

// step runs one step of the walk and stops the walk if it failed.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// installDefault creates the operator's namespace with Pod Security
// restricted enforced, as a cautious cluster admin would, and applies
// config/default into it. No Pod Security warning may come back.
func installDefault(t *testing.T, p paths, k kubectl) {
	k.must(t, "", "create", "namespace", operatorNamespace)
	k.must(t, "", "label", "namespace", operatorNamespace,
		"pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")
	r := k.must(t, "", "apply", "--server-side", "-k", filepath.Join(p.configDir, "default"))
	t.Logf("kubectl apply --server-side -k config/default:\n%s", r.stdout)
	for _, w := range warnings(r.stderr) {
		if strings.Contains(w, "PodSecurity") {
			t.Errorf("Pod Security warning on install: %s", w)
		} else {
			t.Logf("kubectl: %s", w)
		}
	}
	k.waitEstablished(t, "networkintents.networking.netintent.io", "addresspools.networking.netintent.io")

	var ns corev1.Namespace
	k.getJSON(t, &ns, "namespace", operatorNamespace)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace %s: pod-security.kubernetes.io/enforce=%q after install, want restricted", operatorNamespace, got)
	}
}

// checkManagerPodSecurity checks the manager Deployment's shape and that a
// pod made from its template is admitted where restricted is enforced.
// There is no kubelet or controller-manager here, so no pod of the
// Deployment ever exists; a server-side dry run of one is what admission
// would decide.
func checkManagerPodSecurity(t *testing.T, k kubectl) {
	var d appsv1.Deployment
	k.getJSON(t, &d, "deployment", "-n", operatorNamespace, installServiceAccount)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("manager replicas = %v, want 2", d.Spec.Replicas)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("manager has %d containers, want 1", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--leader-elect", "--dns-listen-address=:5353", "--metrics-bind-address=:8443", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("manager args %v lack %s", c.Args, arg)
		}
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("manager liveness probe %+v, want GET /healthz", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("manager readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("manager resources %+v: want cpu and memory requests and limits", c.Resources)
	}
	containerPorts := map[string]corev1.ContainerPort{}
	for _, cp := range c.Ports {
		containerPorts[cp.Name] = cp
	}

	// The DNS Service: port 53 UDP and TCP onto the container's 5353.
	var dnsSvc corev1.Service
	k.getJSON(t, &dnsSvc, "service", "-n", operatorNamespace, "netintent-dns")
	protocols := map[corev1.Protocol]bool{}
	for _, sp := range dnsSvc.Spec.Ports {
		target := containerPorts[sp.TargetPort.String()]
		if sp.Port != 53 || target.ContainerPort != 5353 || target.Protocol != sp.Protocol {
			t.Errorf("netintent-dns port %s %d/%s -> %s: want 53 onto container port 5353 of the same protocol (container ports %v)",
				sp.Name, sp.Port, sp.Protocol, sp.TargetPort.String(), c.Ports)
		}
		protocols[sp.Protocol] = true
	}
	if !protocols[corev1.ProtocolUDP] || !protocols[corev1.ProtocolTCP] {
		t.Errorf("netintent-dns serves %v, want UDP and TCP", protocols)
	}

	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "manager-admission-check", Namespace: operatorNamespace, Labels: d.Spec.Template.Labels},
		Spec:       d.Spec.Template.Spec,
	}
	r := k.run(mustJSON(t, pod), "create", "--dry-run=server", "-f", "-")
	if r.err != nil {
		t.Fatalf("a pod of the manager Deployment is refused in a restricted namespace: %v\n%s", r.err, r.stderr)
	}
	if w := warnings(r.stderr); len(w) > 0 {
		t.Errorf("a pod of the manager Deployment draws warnings: %v", w)
	}
}

// checkPodSecurityCanFail proves that the checks above can fail: a
// Deployment whose pods break restricted draws a warning, and such a pod
// is refused.
func checkPodSecurityCanFail(t *testing.T, k kubectl) {
	const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: psa-canary, namespace: netintent-system}
spec:
  selector: {matchLabels: {app: psa-canary}}
  template:
    metadata: {labels: {app: psa-canary}}
    spec:
      containers:
      - name: canary
        image: canary:latest
        securityContext: {privileged: true}
`
	r := k.must(t, deployment, "apply", "--server-side", "--dry-run=server", "-f", "-")
	if !slices.ContainsFunc(warnings(r.stderr), func(w string) bool { return strings.Contains(w, `would violate PodSecurity "restricted`) }) {
		t.Errorf("a privileged Deployment drew no Pod Security warning; stderr:\n%s", r.stderr)
	}

	const pod = `
apiVersion: v1
kind: Pod
metadata: {name: psa-canary, namespace: netintent-system}
spec:
  containers:
  - name: canary
    image: canary:latest
`
	r = k.run(pod, "create", "--dry-run=server", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "violates PodSecurity") {
		t.Errorf("a pod without a security context was not refused by Pod Security: err %v, stderr:\n%s", r.err, r.stderr)
	}
}

// checkInstalledRBAC checks that nothing the install grants reaches
// Secrets or uses wildcards.
func checkInstalledRBAC(t *testing.T, k kubectl) {
	var clusterRoles struct{ Items []rbacv1.ClusterRole }
	k.getJSON(t, &clusterRoles, "clusterroles", "-l", partOf)
	var roles struct{ Items []rbacv1.Role }
	k.getJSON(t, &roles, "roles", "-A", "-l", partOf)
	type named struct {
		name  string
		rules []rbacv1.PolicyRule
	}
	var all []named
	var haveManager bool
	for _, r := range clusterRoles.Items {
		all = append(all, named{"ClusterRole " + r.Name, r.Rules})
		haveManager = haveManager || r.Name == managerRole
	}
	for _, r := range roles.Items {
		all = append(all, named{"Role " + r.Namespace + "/" + r.Name, r.Rules})
		if r.Namespace != operatorNamespace {
			t.Errorf("Role %s/%s is outside the operator's namespace", r.Namespace, r.Name)
		}
	}
	if !haveManager {
		t.Fatalf("the install has no ClusterRole %s (generated by make manifests)", managerRole)
	}
	for _, r := range all {
		for _, rule := range r.rules {
			for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs} {
				if slices.Contains(list, "*") {
					t.Errorf("%s grants a wildcard: %+v", r.name, rule)
				}
			}
			if slices.Contains(rule.Resources, "secrets") {
				t.Errorf("%s grants access to Secrets: %+v", r.name, rule)
			}
		}
	}
}

// checkOptionalKustomizations checks the kustomizations that config/default
// leaves out: the NetworkPolicies apply, and the ServiceMonitor renders
// (its CRD belongs to the Prometheus Operator, which is not here).
func checkOptionalKustomizations(t *testing.T, p paths, k kubectl) {
	r := k.must(t, "", "apply", "--server-side", "--dry-run=server", "-k", filepath.Join(p.configDir, "network-policy"))
	t.Logf("network-policy:\n%s", r.stdout)
	r = k.must(t, "", "kustomize", filepath.Join(p.configDir, "prometheus"))
	if !strings.Contains(r.stdout, "kind: ServiceMonitor") || !strings.Contains(r.stdout, "namespace: "+operatorNamespace) {
		t.Errorf("config/prometheus does not render a ServiceMonitor in %s:\n%s", operatorNamespace, r.stdout)
	}
	for _, dir := range []string{"crd", "rbac", "manager", "samples"} {
		k.must(t, "", "kustomize", filepath.Join(p.configDir, dir))
	}
}

// installAdmissionPolicy applies config/admission as the README says and
// waits until a new intent comes back from a dry-run create with the
// operator's finalizer: the samples then get it as they are created.
func installAdmissionPolicy(t *testing.T, p paths, k kubectl) {
	r := k.must(t, "", "apply", "--server-side", "-k", filepath.Join(p.configDir, "admission"))
	t.Logf("kubectl apply --server-side -k config/admission:\n%s", r.stdout)
	probe := `{"apiVersion":"networking.netintent.io/v1alpha1","kind":"NetworkIntent","metadata":{"name":"probe","namespace":"default"},` +
		`"spec":{"exposure":"ClusterIP","ports":[{"name":"http","port":80}],"backends":[{"address":"192.0.2.10"}]}}`
	testenv.Await(t, "the policy sets the finalizer", 30*time.Second, func() error {
		r := k.run(probe, "create", "--dry-run=server", "-f", "-", "-o", "jsonpath={.metadata.finalizers}")
		if r.err != nil {
			return fmt.Errorf("%v: %s", r.err, r.stderr)
		}
		if !strings.Contains(r.stdout, v1alpha1.IntentFinalizer) {
			return fmt.Errorf("a dry-run create came back with finalizers %q", r.stdout)
		}
		return nil
	})
}

// checkReadinessGatePolicy labels a namespace as the README says and
// creates pods there (dry run): with no replica of the installed operator
// available (no kubelet runs it here) they get no readiness gate; once the
// Deployment's status says one is available, as kube-controller-manager
// would write it, they do; and the pod created then has it.
func checkReadinessGatePolicy(t *testing.T, k kubectl) {
	k.must(t, "", "create", "namespace", "gated")
	k.must(t, "", "label", "namespace", "gated", v1alpha1.LabelReadinessGate+"="+v1alpha1.ReadinessGateEnabled)
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"gated"},"spec":{"containers":[{"name":"web","image":"web:1"}]}}`
	gates := func() (string, error) {
		r := k.run(pod, "create", "--dry-run=server", "-f", "-", "-o", "jsonpath={.spec.readinessGates}")
		if r.err != nil {
			return "", fmt.Errorf("%v: %s", r.err, r.stderr)
		}
		return r.stdout, nil
	}
	setAvailable := func(n int) {
		k.must(t, "", "patch", "deployment", "netintent-controller-manager", "-n", operatorNamespace, "--subresource=status", "--type=merge",
			"-p", fmt.Sprintf(`{"status":{"replicas":2,"readyReplicas":%d,"availableReplicas":%d}}`, n, n))
	}
	if got, err := gates(); err != nil || got != "" {
		t.Errorf("with no operator replica available, a new pod has readiness gates %q (%v)", got, err)
	}
	setAvailable(1)
	testenv.Await(t, "the policy adds the gate", 30*time.Second, func() error {
		got, err := gates()
		if err != nil {
			return err
		}
		if !strings.Contains(got, v1alpha1.PodConditionBackendHealthy) {
			return fmt.Errorf("a dry-run create came back with readiness gates %q", got)
		}
		return nil
	})
	r := k.must(t, pod, "create", "-f", "-", "-o", "jsonpath={.spec.readinessGates}")
	if !strings.Contains(r.stdout, v1alpha1.PodConditionBackendHealthy) {
		t.Errorf("the pod was created with readiness gates %q", r.stdout)
	}
	setAvailable(0)
}

// checkGatedPodReleased waits for the operator, with the install's RBAC, to
// set the condition of the gated pod that checkReadinessGatePolicy created
// and no intent selects: True, reason NotChecked.
func checkGatedPodReleased(t *testing.T, k kubectl) {
	jsonpath := `jsonpath={.status.conditions[?(@.type=="` + v1alpha1.PodConditionBackendHealthy + `")].reason}`
	testenv.Await(t, "the operator releases the pod", 30*time.Second, func() error {
		r := k.run("", "get", "pod", "web", "-n", "gated", "-o", jsonpath)
		if r.err != nil {
			return fmt.Errorf("%v: %s", r.err, r.stderr)
		}
		if r.stdout != v1alpha1.BackendHealthyNotChecked {
			return fmt.Errorf("the pod's condition has reason %q", r.stdout)
		}
		return nil
	})
	k.must(t, "", "delete", "pod", "web", "-n", "gated", "--wait=false")
	k.must(t, "", "delete", "namespace", "gated", "--wait=false")
}

// addOperatorUser makes a user with no groups and gives it every binding
// that config/default gives the operator's ServiceAccount, so the operator
// run below has exactly the installed permissions.
func addOperatorUser(t *testing.T, cp *controlPlane) *envtest.AuthenticatedUser {
	k := cp.adminKubectl
	user, err := cp.env.AddUser(envtest.User{Name: operatorUser}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", operatorUser, err)
	}
	boundToInstall := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == installServiceAccount && s.Namespace == operatorNamespace
		})
	}
	var mirrored []string
	var crbs struct{ Items []rbacv1.ClusterRoleBinding }
	k.getJSON(t, &crbs, "clusterrolebindings", "-l", partOf)
	for _, b := range crbs.Items {
		if !boundToInstall(b.Subjects) {
			continue
		}
		k.must(t, "", "create", "clusterrolebinding", b.Name+"-e2e", "--clusterrole="+b.RoleRef.Name, "--user="+operatorUser)
		mirrored = append(mirrored, "ClusterRole/"+b.RoleRef.Name)
	}
	var rbs struct{ Items []rbacv1.RoleBinding }
	k.getJSON(t, &rbs, "rolebindings", "-n", operatorNamespace, "-l", partOf)
	for _, b := range rbs.Items {
		if !boundToInstall(b.Subjects) {
			continue
		}
		role := "--role=" + b.RoleRef.Name
		if b.RoleRef.Kind == "ClusterRole" {
			role = "--clusterrole=" + b.RoleRef.Name
		}
		k.must(t, "", "create", "rolebinding", "-n", operatorNamespace, b.Name+"-e2e", role, "--user="+operatorUser)
		mirrored = append(mirrored, b.RoleRef.Kind+"/"+b.RoleRef.Name+" in "+operatorNamespace)
	}
	t.Logf("%s is bound to: %s", operatorUser, strings.Join(mirrored, ", "))
	if !slices.Contains(mirrored, "ClusterRole/"+managerRole) {
		t.Fatalf("the install binds its ServiceAccount to %v, not to the generated ClusterRole %s", mirrored, managerRole)
	}

	// Spot checks of what the user may not do.
	for _, q := range [][]string{
		{"get", "secrets", "--all-namespaces"},
		{"create", "leases.coordination.k8s.io", "-n", "default"},
		{"delete", "namespaces"},
	} {
		r := k.run("", append([]string{"auth", "can-i", "--as=" + operatorUser}, q...)...)
		if strings.TrimSpace(r.stdout) != "no" {
			t.Errorf("kubectl auth can-i %s as %s: %q, want no", strings.Join(q, " "), operatorUser, strings.TrimSpace(r.stdout))
		}
	}
	return user
}

// waitForLeader waits until a Lease in the operator's namespace has a holder
// and returns its name.
func waitForLeader(t *testing.T, admin client.Client) string {
	var name string
	testenv.Await(t, "a leader-election Lease with a holder", 60*time.Second, func() error {
		leases := &coordinationv1.LeaseList{}
		if err := admin.List(t.Context(), leases, client.InNamespace(operatorNamespace)); err != nil {
			return err
		}
		for _, l := range leases.Items {
			// The replicas' member Leases (the probe share) are held too.
			if l.Name != leaderLease {
				continue
			}
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
				name = l.Name
				t.Logf("Lease %s held by %s", l.Name, *l.Spec.HolderIdentity)
				return nil
			}
		}
		return fmt.Errorf("%d leases, none held", len(leases.Items))
	})
	return name
}

// documentation are the address ranges reserved for documentation
// (RFC 5737, RFC 3849): nothing answers there, so samples that name them
// make no test contact anyone.
var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// applySamples applies config/samples/ as the README says, checks that the
// samples cover every exposure and contact nothing, and waits for each
// intent's condition.
func applySamples(t *testing.T, p paths, k kubectl, op *operatorProcess) []v1alpha1.NetworkIntent {
	k.must(t, "", "create", "namespace", samplesNamespace)
	r := k.must(t, "", "apply", "-n", samplesNamespace, "-f", filepath.Join(p.configDir, "samples")+string(filepath.Separator))
	t.Logf("kubectl apply -f config/samples/:\n%s", r.stdout)

	var pools struct{ Items []v1alpha1.AddressPool }
	k.getJSON(t, &pools, "addresspools")
	if len(pools.Items) == 0 {
		t.Errorf("config/samples/ holds no AddressPool")
	}
	var list struct{ Items []v1alpha1.NetworkIntent }
	k.getJSON(t, &list, "networkintents", "-n", samplesNamespace)
	intents := list.Items
	checkSampleCoverage(t, intents)

	// Which condition each intent can reach here. There is no kubelet, so no
	// pod ever backs a selector; LoadBalancer addresses come from the
	// sample AddressPool.
	byCondition := map[string][]string{}
	for _, in := range intents {
		cond := "Ready"
		if in.Spec.Selector != nil && len(in.Spec.Backends) == 0 {
			cond = "ServiceReady"
		}
		byCondition[cond] = append(byCondition[cond], "networkintent/"+in.Name)
	}
	for _, cond := range []string{"Ready", "ServiceReady"} {
		if names := byCondition[cond]; len(names) > 0 {
			args := append([]string{"wait", "-n", samplesNamespace, "--for=condition=" + cond, "--timeout=60s"}, names...)
			if r := k.run("", args...); r.err != nil {
				t.Logf("kubectl get networkintents -o yaml:\n%s", k.run("", "get", "networkintents", "-n", samplesNamespace, "-o", "yaml").stdout)
				if refused := refusals(op); len(refused) > 0 {
					t.Fatalf("kubectl %s: %v: %s\nthe operator was refused by RBAC, which explains it: %s",
						strings.Join(args, " "), r.err, r.stderr, strings.Join(refused, "; "))
				}
				t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), r.err, r.stderr)
			}
			t.Logf("%s: %s", cond, strings.Join(names, " "))
		}
	}

	// What the intents that cannot be Ready here say, and why.
	for _, in := range intents {
		switch {
		case in.Spec.Selector != nil && len(in.Spec.Backends) == 0:
			waitForReason(t, k, in.Name, "EndpointsHealthy", "NoBackends")
			waitForReason(t, k, in.Name, "Ready", "NoBackends")
		case in.Spec.Exposure == v1alpha1.ExposureLoadBalancer:
			addr := strings.TrimSpace(k.must(t, "", "get", "networkintent", "-n", samplesNamespace, in.Name, "-o", "jsonpath={.status.address}").stdout)
			if _, err := netip.ParseAddr(addr); err != nil {
				t.Errorf("LoadBalancer intent %s is Ready with address %q, want an IP from an AddressPool", in.Name, addr)
			}
		}
	}
	t.Logf("kubectl get networkintents:\n%s", k.must(t, "", "get", "networkintents", "-n", samplesNamespace).stdout)

	// Fresh status for the checks that follow.
	k.getJSON(t, &list, "networkintents", "-n", samplesNamespace)
	return list.Items
}

// checkSampleCoverage checks that the samples show every exposure and a
// health check, and that applying them makes the operator contact nobody:
// static backends in documentation ranges with no active probe, ExternalName
// targets under example.com with no probe. (A probe on a selector is fine:
// probes go to pods, and no pod runs here.)
func checkSampleCoverage(t *testing.T, intents []v1alpha1.NetworkIntent) {
	t.Helper()
	exposures := map[v1alpha1.Exposure]bool{}
	healthChecked := false
	for _, in := range intents {
		exposures[in.Spec.Exposure] = true
		hc := in.Spec.HealthCheck
		probed := hc != nil && (hc.HTTP != nil || hc.TCP != nil || hc.GRPC != nil)
		healthChecked = healthChecked || probed
		for _, b := range in.Spec.Backends {
			addr, err := netip.ParseAddr(b.Address)
			if err != nil || !slices.ContainsFunc(documentation, func(p netip.Prefix) bool { return p.Contains(addr) }) {
				t.Errorf("sample %s: backend %s is not in a documentation range %v", in.Name, b.Address, documentation)
			}
		}
		if probed && len(in.Spec.Backends) > 0 {
			t.Errorf("sample %s probes static backends; the e2e would send them traffic", in.Name)
		}
		if in.Spec.ExternalName != nil {
			for _, tg := range in.Spec.ExternalName.Targets {
				if tg.Host != "example.com" && !strings.HasSuffix(tg.Host, ".example.com") {
					t.Errorf("sample %s: target %s is not under example.com", in.Name, tg.Host)
				}
				if tg.HTTP != nil || tg.TCP != nil || tg.GRPC != nil {
					t.Errorf("sample %s: target %s has a probe; the e2e would contact it", in.Name, tg.Host)
				}
			}
		}
	}
	for _, e := range []v1alpha1.Exposure{v1alpha1.ExposureClusterIP, v1alpha1.ExposureNodePort, v1alpha1.ExposureLoadBalancer, v1alpha1.ExposureExternalName} {
		if !exposures[e] {
			t.Errorf("config/samples/ has no %s intent", e)
		}
	}
	if !healthChecked {
		t.Errorf("config/samples/ has no intent with an active health check")
	}
}

// waitForReason waits until the intent's condition has reason.
func waitForReason(t *testing.T, k kubectl, intent, condition, reason string) {
	t.Helper()
	path := fmt.Sprintf(`jsonpath={.status.conditions[?(@.type==%q)].reason}`, condition)
	testenv.Await(t, fmt.Sprintf("%s %s reason %s", intent, condition, reason), 30*time.Second, func() error {
		r := k.run("", "get", "networkintent", "-n", samplesNamespace, intent, "-o", path)
		if r.err != nil {
			return fmt.Errorf("%v: %s", r.err, r.stderr)
		}
		if got := strings.TrimSpace(r.stdout); got != reason {
			return fmt.Errorf("reason %q", got)
		}
		return nil
	})
}

// checkServices checks each intent's Service with kubectl get, and the
// EndpointSlices of those with static backends.
func checkServices(t *testing.T, k kubectl, intents []v1alpha1.NetworkIntent) {
	const fields = `{.spec.type}|{.spec.clusterIP}|{.spec.externalName}|{.spec.loadBalancerClass}|{.spec.ports[*].nodePort}|{.spec.selector}|{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}`
	for _, in := range intents {
		out := strings.TrimSpace(k.must(t, "", "get", "svc", "-n", samplesNamespace, in.Name, "-o", "jsonpath="+fields).stdout)
		f := strings.Split(out, "|")
		if len(f) != 7 {
			t.Fatalf("service %s: unexpected jsonpath output %q", in.Name, out)
		}
		typ, clusterIP, externalName, lbClass, nodePorts, selector, owner := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
		t.Logf("service %s: type=%s clusterIP=%s externalName=%s loadBalancerClass=%s nodePorts=%s owner=%s", in.Name, typ, clusterIP, externalName, lbClass, nodePorts, owner)
		if typ != string(in.Spec.Exposure) {
			t.Errorf("service %s type %s, want %s", in.Name, typ, in.Spec.Exposure)
		}
		if owner != "NetworkIntent/"+in.Name {
			t.Errorf("service %s owned by %q, want NetworkIntent/%s", in.Name, owner, in.Name)
		}
		if selector != "" {
			t.Errorf("service %s has selector %s; the operator writes its endpoints itself", in.Name, selector)
		}
		switch in.Spec.Exposure {
		case v1alpha1.ExposureExternalName:
			want := in.Spec.ExternalName.Targets[0].Host
			if externalName != want || in.Status.Address != want {
				t.Errorf("service %s externalName %q, intent address %q, want %s", in.Name, externalName, in.Status.Address, want)
			}
			continue
		case v1alpha1.ExposureNodePort, v1alpha1.ExposureLoadBalancer:
			for _, np := range strings.Fields(nodePorts) {
				if n, err := strconv.Atoi(np); err != nil || n < 30000 || n > 32767 {
					t.Errorf("service %s node port %q outside 30000-32767", in.Name, np)
				}
			}
			if len(strings.Fields(nodePorts)) != len(in.Spec.Ports) || len(in.Status.NodePorts) != len(in.Spec.Ports) {
				t.Errorf("service %s node ports %q, intent status %v, want one per port", in.Name, nodePorts, in.Status.NodePorts)
			}
		}
		if _, err := netip.ParseAddr(clusterIP); err != nil {
			t.Errorf("service %s cluster IP %q", in.Name, clusterIP)
		}
		if in.Spec.Exposure != v1alpha1.ExposureLoadBalancer && in.Status.Address != clusterIP {
			t.Errorf("intent %s address %q, service cluster IP %s", in.Name, in.Status.Address, clusterIP)
		}
		if in.Spec.LoadBalancer != nil && lbClass != in.Spec.LoadBalancer.Class {
			t.Errorf("service %s loadBalancerClass %q, want %q", in.Name, lbClass, in.Spec.LoadBalancer.Class)
		}
		if len(in.Spec.Backends) > 0 {
			checkSlices(t, k, in)
		}
	}
}

// checkSlices checks that the intent's static backends are published,
// ready, in EndpointSlices the operator manages.
func checkSlices(t *testing.T, k kubectl, in v1alpha1.NetworkIntent) {
	t.Helper()
	const fields = `{range .items[*]}{range .endpoints[*]}{.addresses[0]}={.conditions.ready}|{end}{.metadata.labels.endpointslice\.kubernetes\.io/managed-by}{"\n"}{end}`
	out := k.must(t, "", "get", "endpointslices", "-n", samplesNamespace, "-l", "kubernetes.io/service-name="+in.Name, "-o", "jsonpath="+fields).stdout
	published := map[string]string{}
	for line := range strings.Lines(out) {
		parts := strings.Split(strings.TrimSpace(line), "|")
		managedBy := parts[len(parts)-1]
		if managedBy == "" || managedBy == "endpointslice-controller.k8s.io" {
			t.Errorf("endpoint slice of %s managed by %q, want the operator", in.Name, managedBy)
		}
		for _, ep := range parts[:len(parts)-1] {
			addr, ready, _ := strings.Cut(ep, "=")
			published[addr] = ready
		}
	}
	for _, b := range in.Spec.Backends {
		if published[b.Address] != "true" {
			t.Errorf("intent %s: backend %s published as ready=%q in %v", in.Name, b.Address, published[b.Address], published)
		}
	}
}

// checkDNS queries the operator's DNS port with a real client, once main.go
// runs the DNS server.
func checkDNS(t *testing.T, p paths, k kubectl, op *operatorProcess, upstream *fakeUpstream, intents []v1alpha1.NetworkIntent) {
	zone := "svc.cluster.local"
	for _, in := range intents {
		name := in.Name + "." + samplesNamespace + "." + zone
		switch {
		case in.Spec.Exposure == v1alpha1.ExposureClusterIP && len(in.Spec.Backends) > 0 && !in.Spec.Headless:
			clusterIP := strings.TrimSpace(k.must(t, "", "get", "svc", "-n", samplesNamespace, in.Name, "-o", "jsonpath={.spec.clusterIP}").stdout)
			checkA(t, "udp", op.DNSAddr, name, clusterIP)
			checkA(t, "tcp", op.DNSAddr, name, clusterIP)
		case in.Spec.Exposure == v1alpha1.ExposureExternalName:
			target := in.Spec.ExternalName.Targets[0].Host
			checkCNAME(t, op.DNSAddr, name, target, upstream.ip)
			if upstream.Asked(target) == 0 {
				t.Errorf("the fake upstream was never asked for %s", target)
			}
		}
	}
	checkRefused(t, op.DNSAddr, "www.example.org")
}

// checkMetrics checks that /metrics over HTTPS refuses callers without a
// token or without the netintent-metrics-reader role, and serves one with
// it.
func checkMetrics(t *testing.T, k kubectl, op *operatorProcess) {
	k.must(t, "", "create", "serviceaccount", "-n", samplesNamespace, "metrics-scraper")
	k.must(t, "", "create", "serviceaccount", "-n", samplesNamespace, "nobody")
	k.must(t, "", "create", "clusterrolebinding", "netintent-e2e-metrics-reader",
		"--clusterrole=netintent-metrics-reader", "--serviceaccount="+samplesNamespace+":metrics-scraper")
	scraper := strings.TrimSpace(k.must(t, "", "create", "token", "-n", samplesNamespace, "metrics-scraper").stdout)
	nobody := strings.TrimSpace(k.must(t, "", "create", "token", "-n", samplesNamespace, "nobody").stdout)

	// The certificate is self-signed (no cert dir is given).
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+op.MetricsAddr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	if code, _, err := get(""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d %v, want 401", code, err)
	}
	testenv.Await(t, "/metrics refuses a caller without netintent-metrics-reader", 30*time.Second, func() error {
		if code, body, err := get(nobody); err != nil || code != http.StatusForbidden {
			return fmt.Errorf("%d %v %.200s, want 403", code, err, body)
		}
		return nil
	})
	testenv.Await(t, "/metrics serves netintent-metrics-reader", 30*time.Second, func() error {
		code, body, err := get(scraper)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %v %.200s, want 200", code, err, body)
		}
		for _, want := range []string{`controller_runtime_reconcile_total{controller="networkintent"`, `netintent_intent_endpoints{`} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %s in the metrics", want)
			}
		}
		return nil
	})
}

// deleteSamples deletes the samples with the operator running and checks
// that what it made for them goes with them (its finalizer removes it; no
// garbage collector runs here).
func deleteSamples(t *testing.T, p paths, k kubectl) {
	k.must(t, "", "delete", "-n", samplesNamespace, "--timeout=60s", "-f", filepath.Join(p.configDir, "samples")+string(filepath.Separator))
	for _, kind := range []string{"services", "endpointslices"} {
		if out := strings.TrimSpace(k.must(t, "", "get", kind, "-n", samplesNamespace, "-o", "name").stdout); out != "" {
			t.Errorf("%s left behind after the samples were deleted:\n%s", kind, out)
		}
	}
}

// stopOperator sends SIGTERM and checks that the operator exits 0 within
// 15 s and gives up its Lease on the way out.
func stopOperator(t *testing.T, admin client.Client, op *operatorProcess, leaseName string) {
	began := time.Now()
	err := op.Stop(15 * time.Second)
	if errors.Is(err, testenv.ErrKilled) {
		t.Fatalf("the operator did not stop: %v", err)
	}
	if code := testenv.ExitCode(err); code != 0 {
		t.Errorf("the operator exited with %d (%v) on SIGTERM, want 0", code, err)
	}
	t.Logf("the operator exited %s after SIGTERM", time.Since(began).Round(time.Millisecond))
	lease := &coordinationv1.Lease{}
	if err := admin.Get(t.Context(), client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, lease); err != nil {
		t.Fatalf("getting Lease %s: %v", leaseName, err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("Lease %s still held by %s after the operator exited", leaseName, *h)
	}
}

// uninstall removes what config/default installed. There is no namespace
// controller here, so the namespace itself stays Terminating; the CRDs,
// which the API server removes itself, must go.
func uninstall(t *testing.T, p paths, k kubectl) {
	k.must(t, "", "delete", "-k", filepath.Join(p.configDir, "admission"))
	k.must(t, "", "delete", "--wait=false", "-k", filepath.Join(p.configDir, "default"))
	testenv.Await(t, "CRDs removed", 30*time.Second, func() error {
		r := k.run("", "get", "crd", "-o", "name", "-l", partOf)
		if r.err != nil {
			return fmt.Errorf("%v: %s", r.err, r.stderr)
		}
		if out := strings.TrimSpace(r.stdout); out != "" {
			return fmt.Errorf("still there: %s", out)
		}
		return nil
	})
	if out := strings.TrimSpace(k.must(t, "", "get", "clusterroles,clusterrolebindings,mutatingadmissionpolicies,mutatingadmissionpolicybindings", "-o", "name", "-l", partOf).stdout); out != "" {
		t.Errorf("left behind by uninstall:\n%s", out)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
