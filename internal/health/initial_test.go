package health

import (
	"container/heap"
	"testing"
	"time"
)

// TestInitialHealth runs passing probes against new targets that start
// healthy, unhealthy or unproven, and counts the passes each needs to be
// healthy: a restarted operator must not return a target to traffic before
// a probe has passed.
func TestInitialHealth(t *testing.T) {
	spec := ProbeSpec{Kind: ProbeTCP, Port: 80, HealthyThreshold: 3}
	tests := []struct {
		name   string
		target Target
		// passes is how many passing probes it takes to be healthy; 0:
		// healthy before any probe.
		passes int
	}{
		{"default", Target{}, 0},
		{"unhealthy", Target{StartUnhealthy: true}, 3},
		{"unproven", Target{StartUnproven: true}, 1},
		{"both", Target{StartUnhealthy: true, StartUnproven: true}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProber(Options{})
			tg := tt.target
			tg.ID, tg.Address, tg.Spec = "a", "10.0.0.1", spec
			p.Set(nsName("ns/x"), []Target{tg})
			passes := 0
			for !p.Status(nsName("ns/x"))["a"].Healthy {
				if passes > 5 {
					t.Fatalf("still unhealthy after %d passes", passes)
				}
				rec := p.owners[nsName("ns/x")]["a"]
				heap.Remove(&p.due, rec.index) // as the scheduler does before a probe
				p.finish(rec, time.Now(), Result{Err: nil})
				passes++
			}
			if passes != tt.passes {
				t.Errorf("healthy after %d passes, want %d", passes, tt.passes)
			}
		})
	}

	// An unproven target that fails first needs the full threshold.
	p := NewProber(Options{})
	p.Set(nsName("ns/x"), []Target{{ID: "a", Address: "10.0.0.1", Spec: spec, StartUnproven: true}})
	rec := p.owners[nsName("ns/x")]["a"]
	heap.Remove(&p.due, rec.index)
	p.finish(rec, time.Now(), Result{Err: errProbe})
	for i := range 2 {
		heap.Remove(&p.due, rec.index)
		p.finish(rec, time.Now(), Result{Err: nil})
		if p.Status(nsName("ns/x"))["a"].Healthy {
			t.Fatalf("healthy after a failure and %d passes, threshold 3", i+1)
		}
	}
	heap.Remove(&p.due, rec.index)
	p.finish(rec, time.Now(), Result{Err: nil})
	if !p.Status(nsName("ns/x"))["a"].Healthy {
		t.Fatal("not healthy after a failure and 3 passes")
	}
}
