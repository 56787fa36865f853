package controllers

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/compact"
)

// TestIntentsSelectingLabels checks the pod mappers' lookup of intents by
// selector: from the cache's store, which holds the intents in compact
// form, and, without a store, through the API server, both find the
// intents of a namespace that select a pod's labels, and only those; and
// exposureOf reads each held intent's exposure.
func TestIntentsSelectingLabels(t *testing.T) {
	shop, other := testEnv.Namespace(t), testEnv.Namespace(t)
	intent := func(ns, name string, exposure v1alpha1.Exposure, sel map[string]string) *v1alpha1.NetworkIntent {
		in := &v1alpha1.NetworkIntent{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.NetworkIntentSpec{
			Exposure: exposure, Ports: []v1alpha1.IntentPort{{Name: "http", Port: 80}},
		}}
		if sel != nil {
			in.Spec.Selector = &metav1.LabelSelector{MatchLabels: sel}
		} else {
			in.Spec.Backends = []v1alpha1.Backend{{Address: "10.250.0.1", Port: ptr.To[int32](8080)}}
		}
		return in
	}
	all := []*v1alpha1.NetworkIntent{
		intent(shop, "web", v1alpha1.ExposureClusterIP, map[string]string{"app": "web"}),
		intent(shop, "web-np", v1alpha1.ExposureNodePort, map[string]string{"app": "web", "tier": "edge"}),
		intent(shop, "everything", v1alpha1.ExposureClusterIP, map[string]string{}),
		intent(shop, "static", v1alpha1.ExposureClusterIP, nil),
		intent(shop, "db", v1alpha1.ExposureClusterIP, map[string]string{"app": "db"}),
		intent(other, "web", v1alpha1.ExposureClusterIP, map[string]string{"app": "web"}),
	}
	for _, in := range all {
		if err := k8sClient.Create(suiteCtx, in.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	inf, err := suiteCache.GetInformer(suiteCtx, &v1alpha1.NetworkIntent{})
	if err != nil {
		t.Fatal(err)
	}
	store := inf.(toolscache.SharedIndexInformer).GetIndexer()
	deadline := time.Now().Add(30 * time.Second)
	for _, in := range all {
		for {
			held, ok, err := store.GetByKey(in.Namespace + "/" + in.Name)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if _, isCompact := held.(*compact.Intent); !isCompact {
					t.Fatalf("the cache holds intent %s as a %T, want a *compact.Intent", in.Name, held)
				}
				if got := exposureOf(held.(client.Object)); got != in.Spec.Exposure {
					t.Errorf("exposureOf %s/%s = %q, want %q", in.Namespace, in.Name, got, in.Spec.Exposure)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache has not seen intent %s/%s", in.Namespace, in.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	names := func(ns string, ls ...string) []types.NamespacedName {
		var out []types.NamespacedName
		for _, n := range ls {
			out = append(out, types.NamespacedName{Namespace: ns, Name: n})
		}
		return out
	}
	for _, tc := range []struct {
		ns     string
		labels map[string]string
		want   []types.NamespacedName
	}{
		{shop, map[string]string{"app": "web", "tier": "edge"}, names(shop, "everything", "web", "web-np")},
		{shop, map[string]string{"app": "web"}, names(shop, "everything", "web")},
		{shop, nil, names(shop, "everything")},
		{other, map[string]string{"app": "web"}, names(other, "web")},
		{"no-such-namespace", map[string]string{"app": "web"}, nil},
	} {
		for _, from := range []struct {
			name  string
			store toolscache.Indexer
		}{{"cache's store", store}, {"API server", nil}} {
			got, err := intentsSelectingLabels(suiteCtx, k8sClient, from.store, tc.ns, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("from the %s, the intents of %s selecting %v: %v, want %v", from.name, tc.ns, tc.labels, got, tc.want)
			}
		}
	}
}
