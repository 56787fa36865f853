package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TestReadinessGateRules: healthCheck.readinessGate needs an active probe,
// a selector and mode Enforce, and is refused without them with a message
// that says which; it is accepted with them.
func TestReadinessGateRules(t *testing.T) {
	ctx := context.Background()
	ports := `ports: [{name: http, port: 80}]`
	pods := `selector: {matchLabels: {app: web}}`
	for _, tc := range []struct{ name, spec, want string }{
		{"gate-without-probe", `{exposure: ClusterIP, ` + ports + `, ` + pods + `, healthCheck: {readinessGate: true}}`, "readinessGate writes the active probe's verdict on pods: it needs an http, tcp or grpc probe"},
		{"gate-observe", `{exposure: ClusterIP, ` + ports + `, ` + pods + `, healthCheck: {readinessGate: true, mode: Observe, http: {path: /healthz}}}`, "readinessGate is not for mode Observe"},
		{"gate-without-selector", `{exposure: ClusterIP, ` + ports + `, backends: [{address: 192.0.2.10}], healthCheck: {readinessGate: true, tcp: {port: 80}}}`, "healthCheck.readinessGate writes a condition on the intent's pods: it needs a selector"},
		{"gate-externalname", `{exposure: ExternalName, externalName: {targets: [{host: a.example.com}]}, healthCheck: {readinessGate: true}}`, "it needs an http, tcp or grpc probe"},
		{"gate-not-bool", `{exposure: ClusterIP, ` + ports + `, ` + pods + `, healthCheck: {readinessGate: "always", tcp: {port: 80}}}`, "readinessGate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8sClient.Create(ctx, object(t, "NetworkIntent", tc.name, tc.spec))
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q; want Invalid containing %q", err, tc.want)
			}
		})
	}
	for name, spec := range map[string]string{
		"gate-http":        `{exposure: ClusterIP, ` + ports + `, ` + pods + `, healthCheck: {readinessGate: true, http: {path: /healthz}}}`,
		"gate-grpc":        `{exposure: LoadBalancer, ` + ports + `, ` + pods + `, healthCheck: {readinessGate: true, mode: Enforce, grpc: {}}}`,
		"gate-off-observe": `{exposure: ClusterIP, ` + ports + `, ` + pods + `, healthCheck: {readinessGate: false, mode: Observe, tcp: {port: 80}}}`,
		"gate-off-no-pods": `{exposure: ClusterIP, ` + ports + `, backends: [{address: 192.0.2.10}], healthCheck: {readinessGate: false}}`,
	} {
		if err := k8sClient.Create(ctx, object(t, "NetworkIntent", name, spec)); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
}
