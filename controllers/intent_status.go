package controllers

import (
	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/intent"
)

// Condition types of a NetworkIntent.
const (
	ConditionReady            = v1alpha1.IntentConditionReady
	ConditionServiceReady     = v1alpha1.IntentConditionServiceReady
	ConditionEndpointsHealthy = v1alpha1.IntentConditionEndpointsHealthy
	ConditionAddressAssigned  = v1alpha1.IntentConditionAddressAssigned
)

// Condition reasons of a NetworkIntent.
const (
	ReasonReady           = v1alpha1.IntentReasonReady
	ReasonApplied         = v1alpha1.IntentReasonApplied
	ReasonServiceConflict = v1alpha1.IntentReasonServiceConflict
	ReasonRecreating      = v1alpha1.IntentReasonRecreating
	ReasonApplyFailed     = v1alpha1.IntentReasonApplyFailed
	ReasonAddressPending  = v1alpha1.AddressReasonPending

	ReasonAllHealthy        = v1alpha1.IntentReasonAllHealthy
	ReasonDegraded          = v1alpha1.IntentReasonDegraded
	ReasonBelowHealthyFloor = v1alpha1.IntentReasonBelowHealthyFloor
	ReasonNoBackends        = v1alpha1.IntentReasonNoBackends
)

// ManagedByController is the endpointslice.kubernetes.io/managed-by value of
// the EndpointSlices netintent writes.
const ManagedByController = v1alpha1.EndpointSliceManagedBy

// The intent's status is derived in package intent.
var (
	setCondition   = intent.SetCondition
	observeService = intent.ObserveService
	setReady       = intent.SetReady
)
