package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configures the reconcilers.
type Options struct{}

// SetupWithManager registers every netintent reconciler with the manager.
func SetupWithManager(mgr ctrl.Manager, _ Options) error {
	if err := (&IntentReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("netintent"),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return nil
}
