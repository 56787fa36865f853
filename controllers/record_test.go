package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/internal/record"
	"github.com/netintent/netintent/internal/testenv"
)

// TestEventsRepeatAsSeriesInBoundedMemory records events through the
// operator's recorder against the API server: a repeated event is one Event
// with a series count; its object's edits do not make it a new one; and
// more distinct events than the recorder remembers, recorded before it
// writes, leave exactly as many Events as it has room for, the rest counted
// as dropped.
func TestEventsRepeatAsSeriesInBoundedMemory(t *testing.T) {
	ctx := context.Background()
	ns := testEnv.Namespace(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "subject"}}
	if err := k8sClient.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	const size = 8
	rec := record.New(record.Config{
		Client: k8sClient, Scheme: testScheme, Controller: "netintent", Instance: "netintent-test",
		Size: size, FlushEvery: 100 * time.Millisecond, Log: logr.Discard(),
	})

	// Before the recorder runs: more distinct events than it keeps.
	droppedBefore := testutil.ToFloat64(record.Dropped.WithLabelValues("queue_full"))
	const distinct = 3 * size
	for i := range distinct {
		rec.Eventf(cm, nil, corev1.EventTypeNormal, "Distinct", "Test", "event %d", i)
	}
	if got := testutil.ToFloat64(record.Dropped.WithLabelValues("queue_full")) - droppedBefore; got != distinct-size {
		t.Errorf("%d events dropped with a queue of %d, want %d", int(got), size, distinct-size)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = rec.Start(runCtx) }()
	testenv.Eventually(t, 10*time.Second, func() error {
		n, err := countEvents(ctx, ns, "Distinct")
		if err == nil && n != size {
			err = fmt.Errorf("%d Distinct events, want %d", n, size)
		}
		return err
	})

	// The same event three times, the object edited in between: one Event,
	// counted three times.
	for i := range 3 {
		rec.Eventf(cm, nil, corev1.EventTypeWarning, "Repeated", "Test", "the same thing")
		cm.Data = map[string]string{"edit": fmt.Sprint(i)}
		if err := k8sClient.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var got []eventsv1.Event
		for _, ev := range list.Items {
			if ev.Reason == "Repeated" {
				got = append(got, ev)
			}
		}
		if len(got) != 1 {
			return fmt.Errorf("%d Repeated events, want 1", len(got))
		}
		ev := got[0]
		if ev.Series == nil || ev.Series.Count != 3 {
			return fmt.Errorf("series %+v, want count 3", ev.Series)
		}
		if ev.Regarding.Name != cm.Name || ev.Regarding.Kind != "ConfigMap" || ev.Note != "the same thing" || ev.ReportingController != "netintent" || ev.Action != "Test" {
			return fmt.Errorf("event %+v does not say what was recorded", ev)
		}
		return nil
	})
}

func countEvents(ctx context.Context, ns, reason string) (int, error) {
	var list eventsv1.EventList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return 0, err
	}
	n := 0
	for _, ev := range list.Items {
		if ev.Reason == reason {
			n++
		}
	}
	return n, nil
}
