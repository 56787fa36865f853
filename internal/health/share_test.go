package health

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/internal/testenv"
)

func TestOwnerSplitsEvenlyAndMovesOnlyTheShareOfWhoCameOrWent(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	const n = 10000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	owners := func(members []string) (map[string]string, map[string]int) {
		by, count := map[string]string{}, map[string]int{}
		for _, id := range ids {
			o := Owner(members, key, id)
			by[id] = o
			count[o]++
		}
		return by, count
	}
	two, count := owners([]string{"netintent-a-x1", "netintent-b-y2"})
	for m, c := range count {
		if c < n*45/100 || c > n*55/100 {
			t.Errorf("%s owns %d of %d targets, want 45-55%%", m, c, n)
		}
	}
	three, count := owners([]string{"netintent-a-x1", "netintent-b-y2", "netintent-c-z3"})
	for m, c := range count {
		if c < n*28/100 || c > n*39/100 {
			t.Errorf("of three, %s owns %d of %d targets, want 28-39%%", m, c, n)
		}
	}
	for _, id := range ids {
		if three[id] != two[id] && three[id] != "netintent-c-z3" {
			t.Fatalf("target %s moved from %s to %s when only netintent-c-z3 came", id, two[id], three[id])
		}
	}
	one, _ := owners([]string{"netintent-a-x1"})
	for _, id := range ids {
		if two[id] == "netintent-a-x1" && one[id] != "netintent-a-x1" {
			t.Fatalf("target %s of the member that stayed moved", id)
		}
	}
	if got := Owner(nil, key, ids[0]); got != "" {
		t.Errorf("owner among no members: %q", got)
	}
}

// countingChecks is fakeChecks that also counts the probes of each address.
type countingChecks struct {
	fakeChecks
	mu     sync.Mutex
	probes map[string]int
}

func (c *countingChecks) check(ctx context.Context, addr string, spec ProbeSpec) error {
	c.mu.Lock()
	if c.probes == nil {
		c.probes = map[string]int{}
	}
	c.probes[addr]++
	c.mu.Unlock()
	return c.fakeChecks.check(ctx, addr, spec)
}

func (c *countingChecks) count(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.probes[addr]
}

// relay carries from's reports to to, as the members' ConfigMaps do, until
// the test ends.
func relay(t *testing.T, from *Prober, name string, to *Prober) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-from.ReportChanged():
				to.Mirror(name, from.Report())
			}
		}
	}()
}

func TestMembersProbeTheirShareAndTakeTheOthersVerdicts(t *testing.T) {
	key := nsName("shop/web")
	spec := ProbeSpec{Kind: ProbeTCP, Port: 80, Period: 50 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 1}
	members := []string{"a", "b"}
	var targets []Target
	var ofA, ofB []string
	for i := range 40 {
		addr := fmt.Sprintf("10.0.0.%d", i+1)
		targets = append(targets, Target{ID: addr, Address: addr, Spec: spec})
		if Owner(members, key, addr) == "a" {
			ofA = append(ofA, addr)
		} else {
			ofB = append(ofB, addr)
		}
	}
	if len(ofA) == 0 || len(ofB) == 0 {
		t.Fatalf("a owns %d, b %d: the test wants both to own some", len(ofA), len(ofB))
	}
	var checksA, checksB countingChecks
	a, b := NewProber(Options{}), NewProber(Options{})
	a.probe, b.probe = errorOnly(checksA.check), errorOnly(checksB.check)
	a.SetMembers("a", members)
	b.SetMembers("b", members)
	a.Set(key, targets)
	b.Set(key, targets)
	relay(t, a, "a", b)
	relay(t, b, "b", a)
	startProber(t, a)
	startProber(t, b)

	testenv.Eventually(t, 5*time.Second, testenv.Holds("each member probes its share", func() bool {
		return checksA.count(ofA[0]) >= 3 && checksB.count(ofB[0]) >= 3
	}))
	// What b has probed counts as probed on a too (a readiness gate waits
	// for a probe).
	testenv.Eventually(t, 5*time.Second, testenv.Holds("a sees b's targets probed", func() bool {
		return !a.Status(key)[ofB[0]].LastProbe.IsZero()
	}))
	for _, addr := range ofB {
		if n := checksA.count(addr); n != 0 {
			t.Errorf("a probed b's target %s %d times", addr, n)
		}
	}
	for _, addr := range ofA {
		if n := checksB.count(addr); n != 0 {
			t.Errorf("b probed a's target %s %d times", addr, n)
		}
	}

	// A target of b's dies: a, which does not probe it, learns it from
	// b's report, and delivers the flip as its own.
	dead := ofB[0]
	checksA.set(dead, true)
	checksB.set(dead, true)
	select {
	case f := <-a.Flips():
		if f.Key != key || f.TargetID != dead || f.Healthy {
			t.Fatalf("a's flip %+v, want %s unhealthy", f, dead)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a saw no flip of b's dead target")
	}
	if st := a.Status(key)[dead]; st.Healthy || st.Failure != FailureProbeError {
		t.Errorf("a's status of b's dead target: %+v", st)
	}
	if n := checksA.count(dead); n != 0 {
		t.Errorf("a probed b's target %d times", n)
	}

	// b is gone: a takes its share, probes it at once, and starts from
	// b's last verdict (the dead target stays unhealthy, no flip back).
	before := checksA.count(ofB[1])
	a.SetMembers("a", []string{"a"})
	testenv.Eventually(t, time.Second, testenv.Holds("a probes b's share", func() bool { return checksA.count(ofB[1]) > before }))
	testenv.Eventually(t, time.Second, testenv.Holds("a probes the dead target itself", func() bool { return checksA.count(dead) >= 2 }))
	if st := a.Status(key)[dead]; st.Healthy {
		t.Errorf("a took over the dead target as healthy: %+v", st)
	}
	select {
	case f := <-a.Flips():
		t.Errorf("flip after the takeover: %+v", f)
	default:
	}
	if rep := a.Report()[key]; len(rep) != len(targets) {
		t.Errorf("a reports %d targets after the takeover, want all %d", len(rep), len(targets))
	}
}
