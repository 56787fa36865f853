// Package members shares the health checking among the operator's
// replicas, through the API server alone.
//
// Each replica (a member) holds a Lease of its own, netintent-member-<name>
// in the operator's namespace, and renews it four times a lease. A member
// is live while its Lease is renewed: counted, as client-go's leader
// election counts, from when this replica saw the last renewal, not from
// the other's clock. The live members split the targets by rendezvous
// hashing (health.Owner), so each probes about 1/N of them, and one that
// comes or goes moves only its own share. A member that stops (SIGTERM)
// deletes its Lease, and the others take its share at once; one that
// crashes loses it when its Lease runs out.
//
// Each member reports its verdicts of the targets it owns in a ConfigMap,
// netintent-verdicts-<name>, written when they change (at most every
// ReportEvery) while another member is live to read it; every member watches the others' and takes from them the
// verdicts of the targets it does not own (health.Prober.Mirror). So the
// leader, which writes the EndpointSlices, and every standby hold a verdict
// for every target.
package members

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/netintent/netintent/internal/health"
)

const (
	// LabelMember marks a member's Lease and report; its value is the
	// member's name.
	LabelMember = "networking.netintent.io/member"
	// LeasePrefix and ReportPrefix begin the names of a member's Lease and
	// report ConfigMap.
	LeasePrefix  = "netintent-member-"
	ReportPrefix = "netintent-verdicts-"
	// ReportKey is the report's key in its ConfigMap's data.
	ReportKey = "verdicts"
	// DefaultReportEvery is the shortest time between two writes of a
	// member's report: flips that land this close together go out in one
	// write. A report holds a line per target its member probes, so a
	// node's worth of flips at 20 ms would have the API server store a few
	// MB a second.
	DefaultReportEvery = 100 * time.Millisecond
	// forgetAfter is how many lease durations a dead member's Lease and
	// report stay before a live member deletes them.
	forgetAfter = 20
	// writeTimeout bounds one write to the API server.
	writeTimeout = 5 * time.Second
)

// Config configures Members.
type Config struct {
	// RestConfig reaches the API server for the members' own cache.
	RestConfig *rest.Config
	// Client writes the Lease and the report.
	Client client.Client
	// Namespace holds the Leases and reports: the operator's own.
	Namespace string
	// Name is this member's; see NewName.
	Name string
	// LeaseDuration is how long a member stays live after its last
	// renewal; it renews four times as often.
	LeaseDuration time.Duration
	// ReportEvery: see DefaultReportEvery.
	ReportEvery time.Duration
	// Prober probes this member's share and takes the others' verdicts.
	Prober *health.Prober
	Log    logr.Logger
}

// Members keeps this replica a member and the prober's members current.
// It is a manager.Runnable that runs on every replica.
type Members struct {
	cfg   Config
	cache cache.Cache

	wake chan struct{} // the Leases changed

	mu       sync.Mutex
	seen     map[string]seenLease // by member name
	live     []string
	reported map[string]string // each member's report as last mirrored
}

// seenLease is what this replica saw of a member's Lease: the last
// renewal, and when it saw it.
type seenLease struct {
	renew metav1.MicroTime
	at    time.Time
}

var (
	_ manager.Runnable               = &Members{}
	_ manager.LeaderElectionRunnable = &Members{}
)

// NewName names this replica: its host name (a pod's name) and a random
// suffix, as a Lease name part must be (lower case, at most 40
// characters).
func NewName(hostname, suffix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(hostname) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	host := strings.Trim(b.String(), "-")
	if len(host) > 40 {
		host = strings.TrimRight(host[:40], "-")
	}
	if host == "" {
		return suffix
	}
	return host + "-" + suffix
}

// ValidName checks a member name: it names a Lease and a ConfigMap and is
// a label value.
func ValidName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("member name %q: give lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit", name)
	}
	return nil
}

// New returns Members; add it to the manager.
func New(cfg Config) (*Members, error) {
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = DefaultReportEvery
	}
	if cfg.LeaseDuration < time.Second {
		return nil, fmt.Errorf("member lease duration %s: at least 1s", cfg.LeaseDuration)
	}
	if err := ValidName(cfg.Name); err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(nil)
	req, err := labels.NewRequirement(LabelMember, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	sel = sel.Add(*req)
	c, err := cache.New(cfg.RestConfig, cache.Options{
		Scheme:               cfg.Client.Scheme(),
		DefaultNamespaces:    map[string]cache.Config{cfg.Namespace: {}},
		DefaultLabelSelector: sel,
	})
	if err != nil {
		return nil, fmt.Errorf("members' cache: %w", err)
	}
	return &Members{
		cfg:      cfg,
		cache:    c,
		wake:     make(chan struct{}, 1),
		seen:     map[string]seenLease{},
		reported: map[string]string{},
	}, nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica is a member.
func (m *Members) NeedLeaderElection() bool { return false }

// Start joins, keeps the prober's members and the others' verdicts
// current, and writes this member's report, until ctx is done; then it
// leaves (deletes its Lease and report) so that the others take its share
// at once.
func (m *Members) Start(ctx context.Context) error {
	log := m.cfg.Log
	leases, err := m.cache.GetInformer(ctx, &coordinationv1.Lease{})
	if err != nil {
		return err
	}
	reports, err := m.cache.GetInformer(ctx, &corev1.ConfigMap{})
	if err != nil {
		return err
	}
	poke := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal(m.wake) },
		UpdateFunc: func(any, any) { signal(m.wake) },
		DeleteFunc: func(any) { signal(m.wake) },
	}
	if _, err := leases.AddEventHandler(poke); err != nil {
		return err
	}
	if _, err := reports.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.mirror(obj) },
		UpdateFunc: func(_, obj any) { m.mirror(obj) },
	}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	cacheCtx, stopCache := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCache()
	wg.Go(func() {
		if err := m.cache.Start(cacheCtx); err != nil {
			log.Error(err, "Members' cache stopped")
		}
	})
	if !m.cache.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	if err := m.renew(ctx); err != nil {
		// Not fatal: the renewals go on trying.
		log.Error(err, "Joining the members")
	} else {
		log.Info("Joined the members of the probe share", "name", m.cfg.Name, "lease", LeasePrefix+m.cfg.Name)
	}
	wg.Go(func() { m.report(ctx) })

	renew := time.NewTicker(m.cfg.LeaseDuration / 4)
	defer renew.Stop()
	expire := time.NewTimer(time.Hour)
	defer expire.Stop()
	for {
		next := m.recompute(ctx)
		expire.Reset(next)
		select {
		case <-ctx.Done():
			m.leave()
			return nil
		case <-renew.C:
			if err := m.renew(ctx); err != nil && ctx.Err() == nil {
				log.Error(err, "Renewing the member Lease")
			}
		case <-m.wake:
		case <-expire.C:
		}
	}
}

// recompute works out the live members from the Leases, hands them to the
// prober when they changed, deletes the Leases and reports of long-dead
// members, and returns how long until the next live member may expire.
func (m *Members) recompute(ctx context.Context) time.Duration {
	now := time.Now()
	dur := m.cfg.LeaseDuration
	var list coordinationv1.LeaseList
	if err := m.cache.List(ctx, &list); err != nil {
		return dur / 4
	}
	m.mu.Lock()
	live := []string{m.cfg.Name}
	next := time.Hour
	present := map[string]bool{}
	var forget []string
	for i := range list.Items {
		l := &list.Items[i]
		name := l.Labels[LabelMember]
		if name == "" || l.Spec.RenewTime == nil || name == m.cfg.Name {
			continue
		}
		present[name] = true
		s, ok := m.seen[name]
		if !ok || !s.renew.Equal(l.Spec.RenewTime) {
			s = seenLease{renew: *l.Spec.RenewTime, at: now}
			if !ok && l.Spec.RenewTime.Add(dur).Before(now) {
				// Expired before this replica first saw it.
				s.at = l.Spec.RenewTime.Time
			}
			m.seen[name] = s
		}
		if left := dur - now.Sub(s.at); left > 0 {
			live = append(live, name)
			next = min(next, left)
		} else if now.Sub(l.Spec.RenewTime.Time) > forgetAfter*dur {
			forget = append(forget, name)
		}
	}
	for name := range m.seen {
		if !present[name] {
			delete(m.seen, name)
		}
	}
	slices.Sort(live)
	changed := !slices.Equal(live, m.live)
	if changed {
		m.live = live
		m.cfg.Log.Info("Probing shared among members", "members", live)
	}
	m.mu.Unlock()
	if changed {
		m.cfg.Prober.SetMembers(m.cfg.Name, live)
		liveMembers.Set(float64(len(live)))
		m.mirrorAll(ctx)
		m.cfg.Prober.PokeReport()
	}
	for _, name := range forget {
		m.delete(ctx, name)
	}
	return next + 10*time.Millisecond
}

// mirror hands a member's report to the prober.
func (m *Members) mirror(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	name := cm.Labels[LabelMember]
	if name == "" || name == m.cfg.Name {
		return
	}
	text := cm.Data[ReportKey]
	m.mu.Lock()
	same := m.reported[name] == text
	m.reported[name] = text
	m.mu.Unlock()
	if same {
		return
	}
	report, err := Decode(text)
	if err != nil {
		m.cfg.Log.Error(err, "Unreadable member report", "configMap", cm.Name)
		return
	}
	m.cfg.Prober.Mirror(name, report)
}

// mirrorAll hands every member's report to the prober again, for when the
// members changed: the prober takes only the reports of live members.
func (m *Members) mirrorAll(ctx context.Context) {
	var list corev1.ConfigMapList
	if err := m.cache.List(ctx, &list); err != nil {
		return
	}
	m.mu.Lock()
	clear(m.reported)
	m.mu.Unlock()
	for i := range list.Items {
		m.mirror(&list.Items[i])
	}
}

// renew writes this member's Lease.
func (m *Members) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	now := metav1.NowMicro()
	lease := &coordinationv1.Lease{ObjectMeta: m.meta(LeasePrefix)}
	patch := client.MergeFrom(lease.DeepCopy())
	lease.Spec.RenewTime = &now
	err := m.cfg.Client.Patch(ctx, lease, patch)
	if apierrors.IsNotFound(err) {
		seconds := int32((m.cfg.LeaseDuration + time.Second - 1) / time.Second)
		lease.Spec = coordinationv1.LeaseSpec{
			HolderIdentity:       &m.cfg.Name,
			LeaseDurationSeconds: &seconds,
			AcquireTime:          &now,
			RenewTime:            &now,
		}
		err = m.cfg.Client.Create(ctx, lease)
	}
	return err
}

// report writes this member's report when the prober says it changed, at
// most every ReportEvery.
func (m *Members) report(ctx context.Context) {
	written := "\x00" // nothing yet
	rv := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.cfg.Prober.ReportChanged():
		}
		if len(m.Live()) < 2 {
			// Alone: nobody reads the report. Written afresh when
			// another member comes (recompute pokes the prober then),
			// even if it says what the last write did: a member
			// that saw this one dead for long may have deleted it.
			written = "\x00"
			continue
		}
		text := Encode(m.cfg.Prober.Report())
		if text != written {
			var err error
			if rv, err = m.writeReport(ctx, text, rv); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.cfg.Log.Error(err, "Writing the member report")
				reportWrites.WithLabelValues("failed").Inc()
				// Try again after a pause.
				signalLater(ctx, m.cfg.Prober, time.Second)
			} else {
				written = text
				reportWrites.WithLabelValues("written").Inc()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.cfg.ReportEvery):
		}
	}
}

// signalLater arranges for the report to be looked at again after d.
func signalLater(ctx context.Context, p *health.Prober, d time.Duration) {
	time.AfterFunc(d, func() {
		if ctx.Err() == nil {
			p.PokeReport()
		}
	})
}

// writeReport writes text as this member's report, over the version rv
// when known, and returns the version written.
func (m *Members) writeReport(ctx context.Context, text, rv string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	cm := &corev1.ConfigMap{ObjectMeta: m.meta(ReportPrefix), Data: map[string]string{ReportKey: text}}
	if rv != "" {
		cm.ResourceVersion = rv
		err := m.cfg.Client.Update(ctx, cm)
		if err == nil {
			return cm.ResourceVersion, nil
		}
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return "", err
		}
	}
	err := m.cfg.Client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		have := &corev1.ConfigMap{}
		if err := m.cfg.Client.Get(ctx, client.ObjectKeyFromObject(cm), have); err != nil {
			return "", err
		}
		cm.ResourceVersion = have.ResourceVersion
		err = m.cfg.Client.Update(ctx, cm)
	}
	if err != nil {
		return "", err
	}
	return cm.ResourceVersion, nil
}

// meta is the metadata of this member's Lease or report.
func (m *Members) meta(prefix string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      prefix + m.cfg.Name,
		Namespace: m.cfg.Namespace,
		Labels: map[string]string{
			LabelMember:                    m.cfg.Name,
			"app.kubernetes.io/name":       "netintent",
			"app.kubernetes.io/managed-by": "netintent",
		},
	}
}

// leave deletes this member's Lease and report, so that the others take
// its share now rather than when the Lease would run out.
func (m *Members) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	m.delete(ctx, m.cfg.Name)
}

// delete removes member name's Lease and report.
func (m *Members) delete(ctx context.Context, name string) {
	objs := []client.Object{
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeasePrefix + name, Namespace: m.cfg.Namespace}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ReportPrefix + name, Namespace: m.cfg.Namespace}},
	}
	for _, obj := range objs {
		if err := m.cfg.Client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) && !errors.Is(err, context.Canceled) {
			m.cfg.Log.Error(err, "Deleting a member's object", "name", obj.GetName())
		}
	}
}

// Live returns the live members, this one among them, sorted.
func (m *Members) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.live)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
