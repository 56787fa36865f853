package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
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

// WatchSlices calls each with every event of the EndpointSlices in ns
// (those of Service service, or all when it is empty) from resource version
// rv on, as Watch does.
func WatchSlices(ctx context.Context, cs kubernetes.Interface, ns, service, rv string, each func(ev watch.Event, arrived time.Time)) (stop func(), err error) {
	return Watch(ctx, rv, func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		if service != "" {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + service
		}
		return cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, o)
	}, each)
}

// Watch calls each with every event of the watch that watchFunc starts,
// from resource version rv on (a watch that resumes where it broke off,
// not a poll), and the time it arrived, until stop is called; stop waits
// until each has returned for the last time.
func Watch(ctx context.Context, rv string, watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error), each func(ev watch.Event, arrived time.Time)) (stop func(), err error) {
	watchCtx, cancel := context.WithCancel(ctx)
	rw, err := watchtools.NewRetryWatcherWithContext(watchCtx, rv, &cache.ListWatch{WatchFuncWithContext: watchFunc})
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer rw.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case ev, ok := <-rw.ResultChan():
				if !ok {
					return
				}
				each(ev, time.Now())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}
