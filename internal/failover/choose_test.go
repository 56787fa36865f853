package failover

import (
	"testing"
	"time"
)

func TestChoose(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	up := func(host string, ago time.Duration) Target {
		return Target{Host: host, Healthy: true, Since: now.Add(-ago)}
	}
	down := func(host string) Target { return Target{Host: host, Since: now.Add(-time.Minute)} }
	auto := Policy{After: 30 * time.Second}
	manual := Policy{Manual: true}
	cases := []struct {
		name     string
		targets  []Target
		previous string
		policy   Policy
		force    bool
		want     Decision
	}{
		{"first publish takes the first healthy", []Target{down("a"), up("b", 0), up("c", 0)}, "", auto, false,
			Decision{Active: "b", Change: Initial}},
		{"first publish with all down takes the first", []Target{down("a"), down("b")}, "", auto, false,
			Decision{Active: "a", Change: Initial, AllDown: true}},
		{"healthy primary stays", []Target{up("a", time.Hour), up("b", time.Hour)}, "a", auto, false,
			Decision{Active: "a", Change: Stay}},
		{"failed primary fails over", []Target{down("a"), up("b", time.Hour)}, "a", auto, false,
			Decision{Active: "b", Change: Failover}},
		{"failover skips failed targets", []Target{down("a"), down("b"), up("c", time.Hour)}, "a", manual, false,
			Decision{Active: "c", Change: Failover}},
		{"all down keeps the last published", []Target{down("a"), down("b")}, "b", auto, false,
			Decision{Active: "b", Change: Stay, AllDown: true}},
		{"all down with the published one gone takes the first", []Target{down("a"), down("b")}, "gone", auto, false,
			Decision{Active: "a", Change: Failover, AllDown: true}},
		{"published target removed from the list", []Target{down("a"), up("b", 0)}, "gone", auto, false,
			Decision{Active: "b", Change: Failover}},
		{"automatic waits for failbackAfter", []Target{up("a", 10*time.Second), up("b", time.Hour)}, "b", auto, false,
			Decision{Active: "b", Change: Stay, RecheckAfter: 20 * time.Second}},
		{"automatic fails back after failbackAfter", []Target{up("a", 30*time.Second), up("b", time.Hour)}, "b", auto, false,
			Decision{Active: "a", Change: Failback}},
		{"automatic fails back to the first eligible", []Target{up("a", time.Second), up("b", time.Minute), up("c", time.Hour)}, "c", auto, false,
			Decision{Active: "b", Change: Failback}},
		{"automatic with failbackAfter zero returns at once", []Target{up("a", 0), up("b", time.Hour)}, "b", Policy{}, false,
			Decision{Active: "a", Change: Failback}},
		{"a failing current target fails over even to a new one", []Target{up("a", time.Second), down("b")}, "b", auto, false,
			Decision{Active: "a", Change: Failover}},
		{"manual stays on a healthy target", []Target{up("a", time.Hour), up("b", time.Hour)}, "b", manual, false,
			Decision{Active: "b", Change: Stay}},
		{"manual fails back when asked", []Target{up("a", 0), up("b", time.Hour)}, "b", manual, true,
			Decision{Active: "a", Change: Failback}},
		{"asked with nothing better stays", []Target{down("a"), up("b", time.Hour)}, "b", manual, true,
			Decision{Active: "b", Change: Stay}},
		{"asked overrides failbackAfter", []Target{up("a", time.Second), up("b", time.Hour)}, "b", auto, true,
			Decision{Active: "a", Change: Failback}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Choose(tc.targets, tc.previous, tc.policy, now, tc.force); got != tc.want {
				t.Errorf("Choose = %+v, want %+v", got, tc.want)
			}
		})
	}
}
