package e2e

import (
	"fmt"
	"regexp"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/members"
	"github.com/netintent/netintent/internal/testenv"
	"github.com/netintent/netintent/internal/testnet"
)

// The shape of the probe-share test: one intent of shareBackends static
// backends on a farm, probed every sharePeriod by two replicas.
const (
	shareNamespace = "share-e2e"
	shareBackends  = 200
	// shareBackendsEach is the backends of each intent (the API's most).
	shareBackendsEach = 100
	sharePeriod       = time.Second
	// shareLease is the replicas' --probe-share-lease-duration (the
	// default).
	shareLease = 2 * time.Second
)

// TestProbesSharedBetweenReplicas runs two replicas of the built binary
// with the default flags against one intent of 200 static backends on a
// farm (two intents of 100). Each replica must probe 35-65% of them, as its report says, and
// the farm must receive about one probe per backend per period, not one
// from each replica. Then one replica is killed (SIGKILL): every backend
// it probed must be probed again by the other within the killed replica's
// member lease (and a tenth of a period, the spread of a takeover), and
// no backend may be judged unhealthy on the way.
func TestProbesSharedBetweenReplicas(t *testing.T) {
	p := findPaths(t)
	ic := startIntentCluster(t, p, "e2e-share", shareNamespace)
	c, k := ic.client, ic.adminKubectl
	ctx := t.Context()

	farm := testnet.NewFarm(t, shareBackends)
	var intents []*v1alpha1.NetworkIntent
	for j := range shareBackends / shareBackendsEach {
		in := farmIntent(shareNamespace, fmt.Sprintf("web-%d", j), farm.Addrs[j*shareBackendsEach:(j+1)*shareBackendsEach], sharePeriod, 500*time.Millisecond, 2)
		if err := c.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		intents = append(intents, in)
	}
	ops := [2]*operatorProcess{startOperator(t, p, k.kubeconfig), startOperator(t, p, k.kubeconfig)}
	t.Cleanup(func() { // while an operator may still honour the finalizer
		for _, in := range intents {
			_ = c.Delete(ctx, in)
		}
	})
	testenv.Await(t, "the intents Ready with every backend healthy", 60*time.Second, func() error {
		for _, in := range intents {
			var have v1alpha1.NetworkIntent
			if err := c.Get(ctx, client.ObjectKeyFromObject(in), &have); err != nil {
				return err
			}
			if e := have.Status.Endpoints; !meta.IsStatusConditionTrue(have.Status.Conditions, v1alpha1.IntentConditionReady) || e == nil || e.Healthy != shareBackendsEach {
				return fmt.Errorf("%s: ready %v, endpoints %+v", in.Name, meta.IsStatusConditionTrue(have.Status.Conditions, v1alpha1.IntentConditionReady), have.Status.Endpoints)
			}
		}
		return nil
	})

	// Each replica's report names the backends it probes.
	var shares map[string][]string
	testenv.Await(t, "two reports that split the backends between them", 30*time.Second, func() error {
		var err error
		if shares, err = reportedShares(t, c); err != nil {
			return err
		}
		if len(shares) != 2 {
			return fmt.Errorf("%d reports, want 2", len(shares))
		}
		seen := map[string]string{}
		for m, ids := range shares {
			for _, id := range ids {
				if other, dup := seen[id]; dup {
					return fmt.Errorf("%s reported by %s and %s", id, other, m)
				}
				seen[id] = m
			}
		}
		if len(seen) != shareBackends {
			return fmt.Errorf("the reports name %d backends, want %d", len(seen), shareBackends)
		}
		return nil
	})
	for m, ids := range shares {
		t.Logf("member %s probes %d of %d backends (%.1f%%)", m, len(ids), shareBackends, 100*float64(len(ids))/shareBackends)
		if len(ids) < shareBackends*35/100 || len(ids) > shareBackends*65/100 {
			t.Errorf("member %s probes %d of %d backends, want 35-65%%", m, len(ids), shareBackends)
		}
	}

	// The farm sees each backend probed once a period, not once by each
	// replica.
	const window = 5 * time.Second
	before := farm.Requests()
	time.Sleep(window) // a measuring window, not a wait for a condition
	after := farm.Requests()
	var total uint64
	for i := range after {
		total += after[i] - before[i]
	}
	rate := float64(total) / window.Seconds()
	want := float64(shareBackends) / sharePeriod.Seconds()
	t.Logf("the farm received %.0f probes/s from both replicas, for %d backends probed every %s", rate, shareBackends, sharePeriod)
	if rate < 0.8*want || rate > 1.25*want {
		t.Errorf("the farm received %.0f probes/s, want about %.0f (each backend once a period; %.0f would be every replica probing every backend)", rate, want, 2*want)
	}

	// Kill one replica: its share must be probed again by the other within
	// its lease.
	victim, survivor := ops[0], ops[1]
	victimName := memberOf(t, victim)
	killedShare := shares[victimName]
	if len(killedShare) == 0 {
		t.Fatalf("no report of the killed replica %q among %v", victimName, keys(shares))
	}
	index := map[string]int{}
	for i, a := range farm.Addrs {
		index[a.String()] = i
	}
	last := farm.Requests()
	if err := victim.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-victim.Done()
	again := map[string]time.Duration{}
	bound := shareLease + sharePeriod/10 + 300*time.Millisecond
	for len(again) < len(killedShare) && time.Since(killed) < 3*bound {
		now := farm.Requests()
		at := time.Since(killed)
		for _, id := range killedShare {
			if _, ok := again[id]; !ok && now[index[id]] > last[index[id]] && at > 100*time.Millisecond {
				again[id] = at
			}
		}
		last = now
		time.Sleep(20 * time.Millisecond) // the farm's counters have no watch: sample them
	}
	var worst time.Duration
	for _, id := range killedShare {
		d, ok := again[id]
		if !ok {
			t.Errorf("backend %s of the killed replica not probed again within %s", id, 3*bound)
			continue
		}
		worst = max(worst, d)
	}
	t.Logf("the killed replica's %d backends were probed again %s after the SIGKILL at the latest (its lease: %s, bound %s)", len(killedShare), worst.Round(time.Millisecond), shareLease, bound)
	if worst > bound {
		t.Errorf("the killed replica's share was probed again only %s after the kill, more than its lease and a tenth of a period (%s)", worst.Round(time.Millisecond), bound)
	}
	// The takeover judged nobody wrongly: every backend is still healthy.
	for _, in := range intents {
		var have v1alpha1.NetworkIntent
		if err := c.Get(ctx, client.ObjectKeyFromObject(in), &have); err != nil {
			t.Fatal(err)
		}
		if e := have.Status.Endpoints; e == nil || e.Healthy != shareBackendsEach {
			t.Errorf("%s after the takeover: endpoints %+v, want all %d healthy", in.Name, e, shareBackendsEach)
		}
	}
	// A member that crashed leaves its Lease behind until it has been
	// dead for a while; one that stops deletes it at once.
	if err := survivor.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-survivor.Done()
	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, client.InNamespace(operatorNamespace), client.MatchingLabels{members.LabelMember: memberOf(t, survivor)}); err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 0 {
		t.Errorf("the stopped replica left its report behind")
	}
}

// reportedShares reads the members' reports and returns, by member, the
// targets each reports, of every intent.
func reportedShares(t *testing.T, c client.Client) (map[string][]string, error) {
	t.Helper()
	var cms corev1.ConfigMapList
	if err := c.List(t.Context(), &cms, client.InNamespace(operatorNamespace), client.HasLabels{members.LabelMember}); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, cm := range cms.Items {
		report, err := members.Decode(cm.Data[members.ReportKey])
		if err != nil {
			return nil, fmt.Errorf("report %s: %w", cm.Name, err)
		}
		for _, vs := range report {
			for id := range vs {
				out[cm.Labels[members.LabelMember]] = append(out[cm.Labels[members.LabelMember]], id)
			}
		}
	}
	return out, nil
}

var joinedRE = regexp.MustCompile(`Joined the members of the probe share.*?"name": ?"([^"]+)"`)

// memberOf is the member name a replica logged when it joined.
func memberOf(t *testing.T, op *operatorProcess) string {
	t.Helper()
	if m := joinedRE.FindStringSubmatch(op.Log()); m != nil {
		return m[1]
	}
	t.Fatalf("the replica has not logged that it joined the members")
	return ""
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
