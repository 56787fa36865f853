package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PublishedReady reads the EndpointSlices of Service ns/service: whether
// each address is published ready, and the list's resource version.
func PublishedReady(ctx context.Context, c client.Reader, ns, service string) (map[string]bool, string, error) {
	list := &discoveryv1.EndpointSliceList{}
	if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return nil, "", err
	}
	ready := map[string]bool{}
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			ready[ep.Addresses[0]] = ptr.Deref(ep.Conditions.Ready, false)
		}
	}
	return ready, list.ResourceVersion, nil
}

// WaitPublished waits until the slices of Service ns/service publish each
// address of want with the readiness want gives it, and returns the
// resource version of the list that did.
func WaitPublished(t testing.TB, c client.Reader, ns, service string, timeout time.Duration, want map[string]bool) string {
	t.Helper()
	var rv string
	Await(t, "published endpoints", timeout, func() error {
		ready, listRV, err := PublishedReady(context.Background(), c, ns, service)
		if err != nil {
			return err
		}
		for a, w := range want {
			if r, ok := ready[a]; !ok || r != w {
				return fmt.Errorf("%s published ready=%v (listed %v), want ready=%v", a, r, ok, w)
			}
		}
		rv = listRV
		return nil
	})
	return rv
}
