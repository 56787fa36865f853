package controllers

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/endpoints"
)

// TestEjectionsKeptWhileThereAreSome: countEjections keeps an intent's
// ejections between reconciles only while it has some, and a backend that
// passes again after that is still told apart from one never taken out (in
// mode Observe, by its "would rejoin" event).
func TestEjectionsKeptWhileThereAreSome(t *testing.T) {
	rec := events.NewFakeRecorder(10)
	r := &IntentReconciler{Recorder: rec}
	in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	failing := endpoints.Verdict{Unhealthy: []v1alpha1.UnhealthyEndpoint{{Address: "192.0.2.10", Reason: v1alpha1.EndpointReasonProbeFailed}}}
	kept := func() bool {
		_, ok := r.checkedOut.Load(types.NamespacedName{Namespace: "shop", Name: "web"})
		return ok
	}
	next := func() string {
		t.Helper()
		select {
		case e := <-rec.Events:
			return e
		default:
			return ""
		}
	}

	r.countEjections(in, endpoints.Verdict{}, endpoints.Verdict{}, true)
	if kept() {
		t.Error("ejections kept for an intent with none")
	}
	r.countEjections(in, failing, endpoints.Verdict{}, true)
	if !kept() {
		t.Fatal("the failing backend's ejection was not kept")
	}
	if e := next(); !strings.Contains(e, "would leave traffic") {
		t.Errorf("event %q, want the backend's would-leave event", e)
	}
	r.countEjections(in, failing, endpoints.Verdict{}, true)
	if e := next(); e != "" {
		t.Errorf("event %q for a backend still failing", e)
	}
	r.countEjections(in, endpoints.Verdict{}, endpoints.Verdict{}, true)
	if kept() {
		t.Error("ejections still kept once the backend passes")
	}
	if e := next(); !strings.Contains(e, "would rejoin traffic") {
		t.Errorf("event %q, want the backend's would-rejoin event", e)
	}
	r.countEjections(in, endpoints.Verdict{}, endpoints.Verdict{}, true)
	if e := next(); e != "" {
		t.Errorf("event %q with nothing kept and nothing failing", e)
	}
}
