// Package record writes the operator's Kubernetes Events (events.k8s.io/v1)
// in bounded memory.
//
// It keeps client-go's series semantics: an event repeated within the
// series window becomes a count on the Event first written (series.count,
// series.lastObservedTime) instead of a new Event. Unlike client-go's
// events broadcaster, which keeps every distinct event of the last six to
// twelve minutes (so that memory grows with the rate of events: under churn
// or a bulk failure, without bound), it remembers at most Size recent events,
// the least recently seen forgotten first, and writes them from one goroutine
// through a queue of at most Size; an event that finds the queue full is
// dropped and counted (netintent_events_dropped_total). Events are
// best-effort, as in Kubernetes itself.
package record

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Defaults of Config.
const (
	DefaultSize   = 1024
	DefaultWindow = 6 * time.Minute // client-go's series window
	// DefaultFlushEvery is how often counts of repeated events are
	// written.
	DefaultFlushEvery = 30 * time.Second
	// writeTimeout bounds one write to the API server.
	writeTimeout = 10 * time.Second
)

// Dropped counts the events not written, by reason.
var Dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "netintent_events_dropped_total",
	Help: "Events not written: the queue was full (reason queue_full) or the API server refused or failed the write (reason write_failed).",
}, []string{"reason"})

func init() { metrics.Registry.MustRegister(Dropped) }

// Config configures a Recorder.
type Config struct {
	// Client writes the Events.
	Client client.Client
	// Scheme gives the kinds of the objects events are about.
	Scheme *runtime.Scheme
	// Controller is the events' reportingController; Instance their
	// reportingInstance (this replica).
	Controller, Instance string
	// Size is how many recent events are remembered, and the queue's
	// length (default DefaultSize).
	Size int
	// Window is how long a repeat counts in the first event's series
	// (default DefaultWindow).
	Window time.Duration
	// FlushEvery is how often the counts of repeated events are written
	// (default DefaultFlushEvery).
	FlushEvery time.Duration
	Log        logr.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Recorder is an events.EventRecorder (client-go's interface, as the
// controllers use it). Add it to the manager: it writes while it runs, on
// every replica. Events recorded before it starts wait in its queue.
type Recorder struct {
	cfg   Config
	queue chan write

	mu     sync.Mutex
	recent *lru.Cache       // key → *series
	dirty  map[*series]bool // seen again since their count was written
}

// key is what makes two events the same event: client-go's isomorphism
// (type, action, reason, the objects; the reporter is always this one)
// with the note, and the objects by UID rather than by resource version,
// so that an object's edits do not make its events new ones.
type key struct {
	eventType, action, reason, note string
	regarding, related              objectKey
}

type objectKey struct {
	apiVersion, kind, namespace, name string
	uid                               types.UID
	fieldPath                         string
}

// series is a remembered event: where it was written and how often it has
// been seen.
type series struct {
	namespace, name string
	last            time.Time
	count, written  int32 // seen; count in the API server
	created         bool
}

// write is a unit of the writer's work: create an Event, or write a
// series' count.
type write struct {
	event  *eventsv1.Event // to create
	series *series         // to patch, with count and last
	count  int32
	last   time.Time
}

// New returns a Recorder.
func New(cfg Config) *Recorder {
	if cfg.Size <= 0 {
		cfg.Size = DefaultSize
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Recorder{cfg: cfg, queue: make(chan write, cfg.Size), dirty: map[*series]bool{}}
	// Called with r.mu held (from Add).
	r.recent = lru.NewWithEvictionFunc(cfg.Size, func(_ lru.Key, v any) { delete(r.dirty, v.(*series)) })
	return r
}

// Eventf records an event about regarding (and related, which may be nil).
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	now := r.cfg.Now()
	message := note
	if len(args) > 0 {
		message = fmt.Sprintf(note, args...)
	}
	ref, err := reference.GetReference(r.cfg.Scheme, regarding)
	if err != nil {
		r.cfg.Log.Error(err, "Not recording an event about an object with no kind", "reason", reason, "note", message)
		return
	}
	var relRef *corev1.ObjectReference
	if related != nil {
		if relRef, err = reference.GetReference(r.cfg.Scheme, related); err != nil {
			relRef = nil
		}
	}
	k := key{eventType: eventtype, action: action, reason: reason, note: message, regarding: keyOf(ref)}
	if relRef != nil {
		k.related = keyOf(relRef)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.recent.Get(k); ok {
		s := v.(*series)
		if now.Sub(s.last) < r.cfg.Window {
			s.count++
			s.last = now
			if s.count == 2 && s.created {
				// A series shows at once; later counts go with the flush.
				r.enqueue(write{series: s, count: s.count, last: now})
			} else {
				r.dirty[s] = true
			}
			return
		}
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	s := &series{namespace: ns, name: fmt.Sprintf("%s.%x%s", ref.Name, now.UnixNano(), rand.String(4)), last: now, count: 1, written: 1}
	r.recent.Add(k, s)
	r.enqueue(write{series: s, event: &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns, Name: s.name},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.cfg.Controller,
		ReportingInstance:   r.cfg.Instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relRef,
		Note:                truncate(message, 1024),
		Type:                eventtype,
	}})
}

// enqueue hands a write to the writer, or drops it when the queue is full.
func (r *Recorder) enqueue(w write) {
	select {
	case r.queue <- w:
	default:
		Dropped.WithLabelValues("queue_full").Inc()
	}
}

func keyOf(ref *corev1.ObjectReference) objectKey {
	return objectKey{apiVersion: ref.APIVersion, kind: ref.Kind, namespace: ref.Namespace, name: ref.Name, uid: ref.UID, fieldPath: ref.FieldPath}
}

// truncate cuts s to at most n bytes (the API's limit on a note is 1 kB).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// NeedLeaderElection is false: every replica records its own events.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Start writes until ctx ends.
func (r *Recorder) Start(ctx context.Context) error {
	tick := time.NewTicker(r.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case w := <-r.queue:
			r.write(ctx, w)
		case <-tick.C:
			r.flush()
		}
	}
}

// flush queues the counts of series seen again since their last write.
// (One not yet created gets its count written when it is.)
func (r *Recorder) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.dirty {
		if s.created && s.count > s.written {
			r.enqueue(write{series: s, count: s.count, last: s.last})
		}
		delete(r.dirty, s)
	}
}

// write does one write to the API server. A failure drops it (counted and
// logged at V(1)): events are best-effort.
func (r *Recorder) write(ctx context.Context, w write) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var err error
	if w.event != nil {
		err = r.cfg.Client.Create(ctx, w.event)
		if err == nil {
			r.mu.Lock()
			w.series.created = true
			if w.series.count > 1 {
				// Repeated while being created.
				r.enqueue(write{series: w.series, count: w.series.count, last: w.series.last})
			}
			r.mu.Unlock()
		}
	} else {
		patch, _ := json.Marshal(map[string]any{"series": eventsv1.EventSeries{Count: w.count, LastObservedTime: metav1.NewMicroTime(w.last)}})
		ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: w.series.namespace, Name: w.series.name}}
		err = r.cfg.Client.Patch(ctx, ev, client.RawPatch(types.MergePatchType, patch))
		if err == nil {
			r.mu.Lock()
			if w.count > w.series.written {
				w.series.written = w.count
			}
			r.mu.Unlock()
		}
	}
	if err != nil && !apierrors.IsNotFound(err) {
		Dropped.WithLabelValues("write_failed").Inc()
		r.cfg.Log.V(1).Info("Event not written", "event", w.series.namespace+"/"+w.series.name, "error", err.Error())
	}
}
