package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/netintent/netintent/internal/health"
)

// Options configures the reconcilers.
type Options struct {
	// Prober runs active health checks; it must also be added to the
	// manager (it runs on the leader only). Nil: a default prober is made
	// and added.
	Prober *health.Prober
	// IntentWorkers is how many intents are reconciled at once (0: one).
	IntentWorkers int
}

// SetupWithManager registers every netintent reconciler with the manager.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Prober == nil {
		opts.Prober = health.NewProber(health.Options{})
		if err := mgr.Add(opts.Prober); err != nil {
			return err
		}
	}
	if err := indexPodsByNode(context.Background(), mgr); err != nil {
		return err
	}
	if err := (&IntentReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("netintent"),
		Prober:    opts.Prober,
		Workers:   opts.IntentWorkers,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	// LoadBalancer addresses from AddressPools: the two reconcilers share
	// one allocator.
	pools := newAddressPools(mgr.GetClient(), mgr.GetAPIReader())
	if err := (&LoadBalancerReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("netintent"),
		pools:     pools,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&AddressPoolReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("netintent"),
		pools:    pools,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return nil
}
