package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/health"
)

// ProbeTargetReconciler keeps the prober's targets in line with the
// intents on every replica, leader or not, from the caches alone: it
// writes nothing to the API server. So every replica probes every backend,
// and a standby that becomes leader publishes at once what it has
// observed, a backend that died while the Lease changed hands included,
// rather than starting to probe from what was published. On the leader the
// IntentReconciler sets the same targets (it must know them before it
// judges), and the prober keeps a target's state across Sets that leave it
// unchanged.
type ProbeTargetReconciler struct {
	// Intents computes the targets; only its reading methods and its
	// Prober are used.
	Intents *IntentReconciler
}

var _ reconcile.Reconciler = &ProbeTargetReconciler{}

// Reconcile sets the intent's targets as the IntentReconciler would.
func (r *ProbeTargetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ir := r.Intents
	in := &v1alpha1.NetworkIntent{}
	if err := ir.Client.Get(ctx, req.NamespacedName, in); err != nil {
		if apierrors.IsNotFound(err) {
			ir.Prober.Remove(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !in.DeletionTimestamp.IsZero() {
		ir.Prober.Remove(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if in.Spec.Exposure == v1alpha1.ExposureExternalName {
		if targets := externalTargets(in); len(targets) > 0 {
			ir.Prober.Set(req.NamespacedName, targets)
		} else {
			ir.Prober.Remove(req.NamespacedName)
		}
		return ctrl.Result{}, nil
	}
	svc := &corev1.Service{}
	if err := ir.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		// Without the Service the address families are unknown; its
		// event brings the intent back. Until then the targets stay as
		// they are: the leader may have set them from the Service it has
		// just created.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(svc, in) {
		ir.Prober.Remove(req.NamespacedName) // someone else's: probe nothing
		return ctrl.Result{}, nil
	}
	cands, _, err := ir.candidates(ctx, &intentScope{in: in, service: svc})
	if err != nil {
		return ctrl.Result{}, err
	}
	existing, err := ir.ownedSlices(ctx, in)
	if err != nil {
		return ctrl.Result{}, err
	}
	hc := in.Spec.HealthCheck
	if hc == nil {
		hc = &v1alpha1.HealthCheck{}
	}
	ir.setProbes(req.NamespacedName, hc, cands, publishedOutOfTraffic(existing))
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler to run on every replica. It
// watches what the targets are made of: the intent's spec; the Service
// (families, ownership); the selected pods; the slices (what is published
// out of traffic, where a new target starts from).
func (r *ProbeTargetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(obj)}}
	})
	err := ctrl.NewControllerManagedBy(mgr).
		Named("networkintent-probes").
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false), MaxConcurrentReconciles: r.Intents.Workers}).
		For(&v1alpha1.NetworkIntent{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionPredicate()))).
		Watches(&corev1.Service{}, byName).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1alpha1.NetworkIntent{}, handler.OnlyControllerOwner())).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.Intents.intentsSelecting)).
		Complete(r)
	if err != nil {
		return fmt.Errorf("setting up the probe targets: %w", err)
	}
	return nil
}

// probeSpec turns an intent's probe into the prober's ProbeSpec: probe
// says what to probe (http, tcp or grpc), timing gives period, timeout and
// thresholds (nil: the defaults, as for an ExternalName target), and port is
// the port to probe when the probe names none (the endpoint's first
// target port; 80 for an ExternalName HTTP target). ok is false when
// probe holds none.
func probeSpec(probe v1alpha1.ProbeHandler, timing *v1alpha1.HealthCheck, port int32) (spec health.ProbeSpec, ok bool) {
	switch {
	case probe.HTTP != nil:
		h := probe.HTTP
		spec = health.ProbeSpec{Kind: health.ProbeHTTP, Port: int(port), Path: h.Path, Host: h.Host}
		if h.Port != nil {
			spec.Port = int(*h.Port)
		}
		for _, r := range h.ExpectedStatuses {
			spec.Statuses = append(spec.Statuses, health.StatusRange{Min: int(r.Min), Max: int(r.Max)})
		}
	case probe.TCP != nil:
		spec = health.ProbeSpec{Kind: health.ProbeTCP, Port: int(port)}
		if probe.TCP.Port != nil {
			spec.Port = int(*probe.TCP.Port)
		}
	case probe.GRPC != nil:
		g := probe.GRPC
		spec = health.ProbeSpec{Kind: health.ProbeGRPC, Port: int(port), Service: g.Service, TLS: g.TLS == v1alpha1.GRPCProbeTLSInsecureSkipVerify}
		if g.Port != nil {
			spec.Port = int(*g.Port)
		}
	default:
		return health.ProbeSpec{}, false
	}
	if timing != nil {
		if timing.Period != nil {
			spec.Period = timing.Period.Duration
		}
		if timing.Timeout != nil {
			spec.Timeout = timing.Timeout.Duration
		}
		if timing.HealthyThreshold != nil {
			spec.HealthyThreshold = int(*timing.HealthyThreshold)
		}
		if timing.UnhealthyThreshold != nil {
			spec.UnhealthyThreshold = int(*timing.UnhealthyThreshold)
		}
	}
	return spec.WithDefaults(), true
}

// flipBatchWindow is how long a flip's reconcile request waits in the
// queue, so that the flips of one intent that land this close together (the
// backends of one dead node, seen one after another) are reconciled, and
// their slices written, once.
const flipBatchWindow = 20 * time.Millisecond

// flipSource enqueues the intent of every flip on flips (the prober's
// Flips), flipBatchWindow after it, until flips closes or ctx is done.
func flipSource(flips <-chan health.Flip) source.Source {
	return source.Func(func(ctx context.Context, queue workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case f, ok := <-flips:
					if !ok {
						return
					}
					queue.AddAfter(reconcile.Request{NamespacedName: f.Key}, flipBatchWindow)
				}
			}
		}()
		return nil
	})
}
