package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

var k8sClient client.Client

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(m *testing.M, cp *testenv.ControlPlane) int {
		k8sClient = cp.Client
		return m.Run()
	}))
}

// object builds an unstructured object of the kind from a YAML spec, so
// that tests can send what the Go types would not let them write.
func object(t *testing.T, kind, name, spec string) *unstructured.Unstructured {
	t.Helper()
	body := map[string]any{}
	if err := yaml.Unmarshal([]byte(spec), &body); err != nil {
		t.Fatalf("bad test spec %q: %v", spec, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": body}}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(kind)
	u.SetName(name)
	if kind == "NetworkIntent" {
		u.SetNamespace("default")
	}
	return u
}

func TestInvalidIntentsAreRejectedAtAdmission(t *testing.T) {
	const ports = `ports: [{name: http, port: 80}]`
	cases := []struct {
		name, spec, want string
	}{
		{"externalname-without-targets", `{exposure: ExternalName}`, "exposure ExternalName needs externalName.targets"},
		{"externalname-empty-targets", `{exposure: ExternalName, externalName: {targets: []}}`, "should have at least 1 items"},
		{"target-ip-literal", `{exposure: ExternalName, externalName: {targets: [{host: 10.1.2.3}]}}`, "host must be a DNS name, not an IP address"},
		{"target-ipv6-literal", `{exposure: ExternalName, externalName: {targets: [{host: "2001:db8::1"}]}}`, "host must be a lower case RFC 1123 DNS name"},
		{"target-localhost", `{exposure: ExternalName, externalName: {targets: [{host: localhost}]}}`, "host must not be localhost"},
		{"target-under-localhost", `{exposure: ExternalName, externalName: {targets: [{host: api.localhost}]}}`, "host must not be localhost"},
		{"target-not-rfc1123", `{exposure: ExternalName, externalName: {targets: [{host: "Bad_Host!"}]}}`, "host must be a lower case RFC 1123 DNS name"},
		{"externalname-with-selector", `{exposure: ExternalName, selector: {matchLabels: {app: x}}, externalName: {targets: [{host: a.example.com}]}}`, "has no selector or backends"},
		{"externalname-with-nodeport", `{exposure: ExternalName, ports: [{name: http, port: 80, nodePort: 30080}], externalName: {targets: [{host: a.example.com}]}}`, "nodePort is only valid with exposure NodePort or LoadBalancer"},
		{"externalname-field-on-clusterip", `{exposure: ClusterIP, ` + ports + `, externalName: {targets: [{host: a.example.com}]}}`, "externalName is only valid with exposure ExternalName"},
		{"nodeport-on-clusterip", `{exposure: ClusterIP, ports: [{name: http, port: 80, nodePort: 30080}]}`, "nodePort is only valid with exposure NodePort or LoadBalancer"},
		{"nodeport-below-range", `{exposure: NodePort, ports: [{name: http, port: 80, nodePort: 80}]}`, "should be greater than or equal to 30000"},
		{"nodeport-above-range", `{exposure: NodePort, ports: [{name: http, port: 80, nodePort: 32768}]}`, "should be less than or equal to 32767"},
		{"ports-missing", `{exposure: ClusterIP}`, "ports are required unless exposure is ExternalName"},
		{"duplicate-port-names", `{exposure: ClusterIP, ports: [{name: http, port: 80}, {name: http, port: 81}]}`, "Duplicate value"},
		{"duplicate-port-numbers", `{exposure: ClusterIP, ports: [{name: a, port: 80}, {name: b, port: 80}]}`, "each port number may appear once per protocol"},
		{"target-port-out-of-range", `{exposure: ClusterIP, ports: [{name: http, port: 80, targetPort: 70000}]}`, "targetPort must be a number from 1 to 65535"},
		{"probe-http-and-tcp", `{exposure: ClusterIP, ` + ports + `, healthCheck: {http: {path: /healthz}, tcp: {port: 80}}}`, "set only one of http, tcp or grpc"},
		{"probe-http-and-grpc", `{exposure: ClusterIP, ` + ports + `, healthCheck: {http: {path: /healthz}, grpc: {port: 9000}}}`, "set only one of http, tcp or grpc"},
		{"probe-tcp-and-grpc", `{exposure: ClusterIP, ` + ports + `, healthCheck: {tcp: {port: 80}, grpc: {}}}`, "set only one of http, tcp or grpc"},
		{"probe-all-three", `{exposure: ClusterIP, ` + ports + `, healthCheck: {http: {}, tcp: {}, grpc: {}}}`, "set only one of http, tcp or grpc"},
		{"target-probe-tcp-and-grpc", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com, tcp: {port: 443}, grpc: {port: 443}}]}}`, "set only one of http, tcp or grpc"},
		{"grpc-port-zero", `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {port: 0}}}`, "should be greater than or equal to 1"},
		{"grpc-port-above-range", `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {port: 65536}}}`, "should be less than or equal to 65535"},
		{"grpc-service-too-long", `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {service: ` + strings.Repeat("s", 257) + `}}}`, "may not be more than 256"},
		{"grpc-tls-unknown", `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {tls: Verify}}}`, `supported values: "Disabled", "InsecureSkipVerify"`},
		{"target-grpc-without-port", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com, grpc: {service: api}}]}}`, "a grpc probe of an external target needs a port"},
		{"externalname-with-healthcheck-grpc", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, healthCheck: {grpc: {port: 443}}}`, "sets each target's probe under externalName.targets"},
		{"observe-without-probe", `{exposure: ClusterIP, ` + ports + `, healthCheck: {mode: Observe}}`, "mode Observe needs an http, tcp or grpc probe"},
		{"mode-unknown", `{exposure: ClusterIP, ` + ports + `, healthCheck: {mode: Shadow, tcp: {port: 80}}}`, `supported values: "Enforce", "Observe"`},
		{"observe-externalname", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, healthCheck: {mode: Observe}}`, "healthCheck.mode Observe is not for ExternalName intents"},
		{"threshold-zero", `{exposure: ClusterIP, ` + ports + `, healthCheck: {unhealthyThreshold: 0}}`, "should be greater than or equal to 1"},
		{"threshold-too-high", `{exposure: ClusterIP, ` + ports + `, healthCheck: {healthyThreshold: 11}}`, "should be less than or equal to 10"},
		{"floor-above-100", `{exposure: ClusterIP, ` + ports + `, healthCheck: {minHealthyPercent: 150}}`, "should be less than or equal to 100"},
		{"period-too-short", `{exposure: ClusterIP, ` + ports + `, healthCheck: {period: 99ms}}`, "period must be between 100ms and 5m"},
		{"period-too-long", `{exposure: ClusterIP, ` + ports + `, healthCheck: {period: 6m}}`, "period must be between 100ms and 5m"},
		{"timeout-too-short", `{exposure: ClusterIP, ` + ports + `, healthCheck: {period: 100ms, timeout: 5ms}}`, "timeout must be between 10ms and 1m"},
		{"timeout-longer-than-short-period", `{exposure: ClusterIP, ` + ports + `, healthCheck: {period: 100ms, timeout: 150ms}}`, "timeout must not be longer than period"},
		{"timeout-longer-than-period", `{exposure: ClusterIP, ` + ports + `, healthCheck: {period: 2s, timeout: 5s}}`, "timeout must not be longer than period"},
		{"backend-loopback", `{exposure: ClusterIP, ` + ports + `, backends: [{address: 127.0.0.1}]}`, "must not be loopback"},
		{"backend-metadata-address", `{exposure: ClusterIP, ` + ports + `, backends: [{address: 169.254.169.254}]}`, "must not be loopback, link-local"},
		{"backend-not-ip", `{exposure: ClusterIP, ` + ports + `, backends: [{address: db.example.com}]}`, "address must be an IPv4 or IPv6 address"},
		{"loadbalancer-on-nodeport", `{exposure: NodePort, ` + ports + `, loadBalancer: {externalTrafficPolicy: Local}}`, "loadBalancer is only valid with exposure LoadBalancer"},
		{"pool-without-class", `{exposure: LoadBalancer, ` + ports + `, loadBalancer: {pool: public}}`, "pool and address need class networking.netintent.io/address-pool"},
		{"headless-nodeport", `{exposure: NodePort, ` + ports + `, headless: true}`, "headless is only valid with exposure ClusterIP"},
		{"externalname-with-healthcheck-probe", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, healthCheck: {tcp: {port: 443}}}`, "sets each target's probe under externalName.targets"},
		{"target-tcp-without-port", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com, tcp: {}}]}}`, "a tcp probe of an external target needs a port"},
		{"failback-unknown", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}], failback: Sometimes}}`, "Unsupported value: \"Sometimes\""},
		{"failback-after-too-long", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}], failbackAfter: 2h}}`, "failbackAfter must be between 0s and 1h"},
		{"failback-after-negative", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}], failbackAfter: -5s}}`, "failbackAfter must be between 0s and 1h"},
		{"failback-after-not-a-duration", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}], failbackAfter: soon}}`, "failbackAfter"},
		{"failback-after-with-manual", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}, {host: b.example.com}], failback: Manual, failbackAfter: 10s}}`, "failbackAfter applies to failback Automatic only"},
		{"traffic-distribution-unknown", `{exposure: ClusterIP, ` + ports + `, trafficDistribution: PreferSameRegion}`, `supported values: "PreferClose", "PreferSameZone", "PreferSameNode"`},
		{"traffic-distribution-headless", `{exposure: ClusterIP, ` + ports + `, headless: true, trafficDistribution: PreferSameZone}`, "trafficDistribution steers proxied traffic to close endpoints: not valid with exposure ExternalName or headless"},
		{"traffic-distribution-externalname", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, trafficDistribution: PreferClose}`, "not valid with exposure ExternalName or headless"},
		{"unknown-exposure", `{exposure: Ingress, ` + ports + `}`, "Unsupported value: \"Ingress\""},
		{"two-families-single-stack", `{exposure: ClusterIP, ` + ports + `, ipFamilyPolicy: SingleStack, ipFamilies: [IPv4, IPv6]}`, "two ipFamilies need ipFamilyPolicy PreferDualStack or RequireDualStack"},
		{"two-families-no-policy", `{exposure: ClusterIP, ` + ports + `, ipFamilies: [IPv6, IPv4]}`, "two ipFamilies need ipFamilyPolicy PreferDualStack or RequireDualStack"},
		{"family-twice", `{exposure: ClusterIP, ` + ports + `, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv6, IPv6]}`, "ipFamilies must not list a family twice"},
		{"three-families", `{exposure: ClusterIP, ` + ports + `, ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6, IPv4]}`, "must have at most 2 items"},
		{"unknown-family", `{exposure: ClusterIP, ` + ports + `, ipFamilies: [IPv5]}`, `supported values: "IPv4", "IPv6"`},
		{"unknown-policy", `{exposure: ClusterIP, ` + ports + `, ipFamilyPolicy: DualStack}`, `supported values: "SingleStack", "PreferDualStack", "RequireDualStack"`},
		{"families-on-externalname", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, ipFamilies: [IPv6]}`, "ipFamilyPolicy and ipFamilies are not valid with exposure ExternalName"},
		{"policy-on-externalname", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, ipFamilyPolicy: SingleStack}`, "ipFamilyPolicy and ipFamilies are not valid with exposure ExternalName"},
		{"backend-port-with-two-ports", `{exposure: ClusterIP, ports: [{name: http, port: 80}, {name: metrics, port: 9090}], backends: [{address: 192.0.2.10, port: 8080}]}`, "backends[].port is only valid on an intent with one port"},
		{"local-policy-with-backends", `{exposure: LoadBalancer, ` + ports + `, loadBalancer: {class: example.com/lb, externalTrafficPolicy: Local}, backends: [{address: 192.0.2.10}]}`, "externalTrafficPolicy Local sends outside traffic only to endpoints on the node"},
		{"local-policy-with-pods-and-backends", `{exposure: LoadBalancer, ` + ports + `, selector: {matchLabels: {app: web}}, loadBalancer: {externalTrafficPolicy: Local}, backends: [{address: 192.0.2.10}]}`, "static backends are on no node"},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8sClient.Create(ctx, object(t, "NetworkIntent", tc.name, tc.spec))
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want Invalid containing %q", err, tc.want)
			}
			got := &v1alpha1.NetworkIntent{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: tc.name}, got); !apierrors.IsNotFound(err) {
				t.Fatalf("something was created: %v", err)
			}
		})
	}
}

// TestBackendRulesAcceptWhatMakesSense: the rules on backends refuse only
// what they name.
func TestBackendRulesAcceptWhatMakesSense(t *testing.T) {
	ctx := context.Background()
	for name, spec := range map[string]string{
		"backend-port-one-port":    `{exposure: ClusterIP, ports: [{name: http, port: 80}], backends: [{address: 192.0.2.10, port: 8080}]}`,
		"backends-two-ports":       `{exposure: ClusterIP, ports: [{name: http, port: 80, targetPort: 8080}, {name: metrics, port: 9090}], backends: [{address: 192.0.2.10}]}`,
		"local-policy-pods":        `{exposure: LoadBalancer, ports: [{name: http, port: 80}], selector: {matchLabels: {app: web}}, loadBalancer: {externalTrafficPolicy: Local}}`,
		"cluster-policy-backends":  `{exposure: LoadBalancer, ports: [{name: http, port: 80}], loadBalancer: {externalTrafficPolicy: Cluster}, backends: [{address: 192.0.2.10}]}`,
		"local-policy-no-backends": `{exposure: LoadBalancer, ports: [{name: http, port: 80}], selector: {matchLabels: {app: web}}, loadBalancer: {externalTrafficPolicy: Local}, backends: []}`,
	} {
		if err := k8sClient.Create(ctx, object(t, "NetworkIntent", name, spec)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// TestTrafficDistributionsAccepted: each value Kubernetes accepts on a
// Service, with each exposure that is proxied, and beside static backends
// (whose slices then carry no hints).
func TestTrafficDistributionsAccepted(t *testing.T) {
	ctx := context.Background()
	for name, spec := range map[string]string{
		"prefer-close":              `{exposure: ClusterIP, ports: [{name: http, port: 80}], selector: {matchLabels: {app: web}}, trafficDistribution: PreferClose}`,
		"prefer-same-zone-nodeport": `{exposure: NodePort, ports: [{name: http, port: 80}], selector: {matchLabels: {app: web}}, trafficDistribution: PreferSameZone}`,
		"prefer-same-node-lb":       `{exposure: LoadBalancer, ports: [{name: http, port: 80}], selector: {matchLabels: {app: web}}, trafficDistribution: PreferSameNode, headless: false}`,
		"prefer-close-backends":     `{exposure: ClusterIP, ports: [{name: http, port: 80}], backends: [{address: 192.0.2.10}], trafficDistribution: PreferClose}`,
	} {
		if err := k8sClient.Create(ctx, object(t, "NetworkIntent", name, spec)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// TestSubSecondHealthChecksAccepted: periods down to 100ms, with a timeout
// below them, are valid.
func TestSubSecondHealthChecksAccepted(t *testing.T) {
	ctx := context.Background()
	ports := `ports: [{name: http, port: 80}]`
	for name, spec := range map[string]string{
		"period-100ms":             `{exposure: ClusterIP, ` + ports + `, healthCheck: {tcp: {port: 80}, period: 100ms}}`,
		"period-100ms-timeout-50":  `{exposure: ClusterIP, ` + ports + `, healthCheck: {tcp: {port: 80}, period: 100ms, timeout: 50ms}}`,
		"period-250ms-timeout-10":  `{exposure: ClusterIP, ` + ports + `, healthCheck: {http: {path: /healthz}, period: 250ms, timeout: 10ms, unhealthyThreshold: 2}}`,
		"period-100ms-timeout-100": `{exposure: ClusterIP, ` + ports + `, healthCheck: {tcp: {port: 80}, period: 100ms, timeout: 100ms}}`,
		"mode-observe":             `{exposure: ClusterIP, ` + ports + `, healthCheck: {mode: Observe, http: {path: /healthz}}}`,
		"mode-enforce":             `{exposure: ClusterIP, ` + ports + `, healthCheck: {mode: Enforce}}`,
	} {
		if err := k8sClient.Create(ctx, object(t, "NetworkIntent", name, spec)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

// TestGRPCHealthChecksAccepted: gRPC checks in every place a probe goes,
// with and without their optional fields.
func TestGRPCHealthChecksAccepted(t *testing.T) {
	ctx := context.Background()
	ports := `ports: [{name: grpc, port: 50051}]`
	for name, spec := range map[string]string{
		"grpc-defaults":       `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {}}}`,
		"grpc-everything":     `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {port: 65535, service: shop.Payments, tls: InsecureSkipVerify}, period: 2s}}`,
		"grpc-plaintext":      `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {port: 1, tls: Disabled}}}`,
		"grpc-service-256":    `{exposure: ClusterIP, ` + ports + `, healthCheck: {grpc: {service: ` + strings.Repeat("s", 256) + `}}}`,
		"grpc-observe":        `{exposure: ClusterIP, ` + ports + `, healthCheck: {mode: Observe, grpc: {}}}`,
		"grpc-static-backend": `{exposure: ClusterIP, ` + ports + `, backends: [{address: 192.0.2.10}], healthCheck: {grpc: {service: api}}}`,
		"grpc-targets":        `{exposure: ExternalName, externalName: {targets: [{host: a.example.com, grpc: {port: 443, tls: InsecureSkipVerify}}, {host: b.example.com, tcp: {port: 443}}]}}`,
	} {
		if err := k8sClient.Create(ctx, object(t, "NetworkIntent", name, spec)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}

func TestFailbackSettingsAreAccepted(t *testing.T) {
	ctx := context.Background()
	for name, ext := range map[string]string{
		"failback-default":   `{targets: [{host: a.example.com}, {host: b.example.com}]}`,
		"failback-automatic": `{targets: [{host: a.example.com}, {host: b.example.com}], failback: Automatic, failbackAfter: 1h}`,
		"failback-at-once":   `{targets: [{host: a.example.com}, {host: b.example.com}], failbackAfter: 0s}`,
		"failback-manual":    `{targets: [{host: a.example.com}, {host: b.example.com}], failback: Manual}`,
	} {
		if err := k8sClient.Create(ctx, object(t, "NetworkIntent", name, `{exposure: ExternalName, externalName: `+ext+`}`)); err != nil {
			t.Errorf("%s: valid intent refused: %v", name, err)
		}
	}
}

func TestInvalidUpdateKeepsExistingIntent(t *testing.T) {
	ctx := context.Background()
	in := object(t, "NetworkIntent", "keep-me", `{exposure: LoadBalancer, ports: [{name: http, port: 80}], loadBalancer: {class: example.com/lb}}`)
	if err := k8sClient.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	before := in.GetResourceVersion()
	for _, bad := range []string{
		`{exposure: ExternalName, externalName: {targets: [{host: localhost}]}}`,
		`{exposure: LoadBalancer, ports: [{name: http, port: 80, nodePort: 80}], loadBalancer: {class: example.com/other}}`,
	} {
		upd := object(t, "NetworkIntent", "keep-me", bad)
		upd.SetResourceVersion(before)
		if err := k8sClient.Update(ctx, upd); !apierrors.IsInvalid(err) {
			t.Fatalf("update to %s: got %v, want Invalid", bad, err)
		}
	}
	got := &v1alpha1.NetworkIntent{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "default", Name: "keep-me"}, got); err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != before || got.Spec.Exposure != v1alpha1.ExposureLoadBalancer || got.Spec.LoadBalancer.Class != "example.com/lb" {
		t.Fatalf("existing intent changed: %+v", got.Spec)
	}
}

func TestInvalidAddressPoolsAreRejected(t *testing.T) {
	cases := []struct{ name, spec, want string }{
		{"no-addresses", `{addresses: []}`, "should have at least 1 items"},
		{"not-an-address", `{addresses: [banana]}`, "each address entry must be a CIDR"},
		{"half-range", `{addresses: [10.0.0.1-10.0.0]}`, "each address entry must be a CIDR"},
		{"mixed-family-range", `{addresses: ["10.0.0.1-2001:db8::1"]}`, "each address entry must be a CIDR"},
		{"bare-address", `{addresses: [192.0.2.7]}`, "each address entry must be a CIDR"},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8sClient.Create(ctx, object(t, "AddressPool", tc.name, tc.spec))
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want Invalid containing %q", err, tc.want)
			}
		})
	}
	good := object(t, "AddressPool", "good", `{addresses: [192.0.2.0/28, 192.0.2.100-192.0.2.110, "2001:db8::/120"]}`)
	if err := k8sClient.Create(ctx, good); err != nil {
		t.Fatalf("valid pool refused: %v", err)
	}
}

// TestIPFamiliesAccepted: every policy, alone or with the families a
// Service would take with it, is valid.
func TestIPFamiliesAccepted(t *testing.T) {
	const base = `exposure: LoadBalancer, ports: [{name: http, port: 80}], `
	for i, spec := range []string{
		`ipFamilyPolicy: SingleStack`,
		`ipFamilyPolicy: SingleStack, ipFamilies: [IPv6]`,
		`ipFamilyPolicy: PreferDualStack`,
		`ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv6, IPv4]`,
		`ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4]`,
		`ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6]`,
		`ipFamilies: [IPv4]`,
	} {
		in := object(t, "NetworkIntent", fmt.Sprintf("families-%d", i), "{"+base+spec+"}")
		if err := k8sClient.Create(context.Background(), in); err != nil {
			t.Errorf("%s: valid intent refused: %v", spec, err)
		}
	}
}
