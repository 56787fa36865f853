package v1alpha1

// Conditions netintent writes, and their reasons. A condition type or reason
// is named after its kind where two kinds share a word (an intent's Ready is
// not an AddressPool's). Each reason names something a person can act on;
// the condition's message says what to do.

// ServiceConditionAddressAssigned is the condition netintent writes on the
// status of a LoadBalancer Service of class AddressPoolClass: True with the
// address given, else False with why not. An intent mirrors it in its own
// AddressAssigned condition.
const ServiceConditionAddressAssigned = "networking.netintent.io/AddressAssigned"

// Reasons of a Service's address condition, and of the AddressAssigned
// condition of the intent that mirrors it.
const (
	// AddressReasonAssigned: the address is the Service's.
	AddressReasonAssigned = "Assigned"
	// AddressReasonPending: no address yet and no reason known why (the
	// intent's condition only, before the address is given or refused).
	AddressReasonPending = "AddressPending"
	// AddressReasonPoolExhausted: every address of the eligible pools is
	// taken.
	AddressReasonPoolExhausted = "PoolExhausted"
	// AddressReasonAddressTaken: the requested address is another
	// Service's.
	AddressReasonAddressTaken = "AddressTaken"
	// AddressReasonAddressNotInPool: the requested address is in no pool in
	// use, or in one that avoids it.
	AddressReasonAddressNotInPool = "AddressNotInPool"
	// AddressReasonPoolNotAllowed: the named pool, or the requested
	// address's pool, does not select the Service's namespace.
	AddressReasonPoolNotAllowed = "PoolNotAllowed"
	// AddressReasonNoPool: the named pool does not exist or is not in use,
	// or no pool with autoAssign selects the namespace, or none has the
	// family.
	AddressReasonNoPool = "NoPool"
	// AddressReasonNoDualStackPool: a RequireDualStack Service needs an
	// address of each family from one pool, and no pool it may use holds
	// free addresses of both.
	AddressReasonNoDualStackPool = "NoDualStackPool"
)

// AddressPoolConditionReady is an AddressPool's condition: True while the
// pool gives addresses out.
const AddressPoolConditionReady = "Ready"

// Reasons of an AddressPool's Ready condition.
const (
	// AddressPoolReasonInUse: the pool gives addresses out.
	AddressPoolReasonInUse = "InUse"
	// AddressPoolReasonOverlap: the pool shares addresses with an older
	// pool and gives none out.
	AddressPoolReasonOverlap = "Overlap"
	// AddressPoolReasonInvalid: the pool cannot be parsed and gives none
	// out.
	AddressPoolReasonInvalid = "Invalid"
	// AddressPoolReasonExhausted is the reason of the event raised when
	// every address of a family of the pool is assigned.
	AddressPoolReasonExhausted = "PoolExhausted"
)

// Condition types of a NetworkIntent. Ready folds the others in.
const (
	IntentConditionReady            = "Ready"
	IntentConditionServiceReady     = "ServiceReady"
	IntentConditionEndpointsHealthy = "EndpointsHealthy"
	// IntentConditionAddressAssigned mirrors the Service's address
	// (LoadBalancer intents only); its reasons are the AddressReason
	// constants.
	IntentConditionAddressAssigned = "AddressAssigned"
)

// Reasons of a NetworkIntent's Ready and ServiceReady conditions. A Ready
// that is False takes the reason of the first condition that is not True.
const (
	// IntentReasonReady: every condition that applies is True.
	IntentReasonReady = "Ready"
	// IntentReasonApplied: the Service matches the intent.
	IntentReasonApplied = "Applied"
	// IntentReasonServiceConflict: a Service of the intent's name exists
	// and is not the intent's.
	IntentReasonServiceConflict = "ServiceConflict"
	// IntentReasonRecreating: the old Service is being deleted to change
	// what cannot change in place.
	IntentReasonRecreating = "Recreating"
	// IntentReasonApplyFailed: the API server refused the Service.
	IntentReasonApplyFailed = "ApplyFailed"
)

// Reasons of a NetworkIntent's EndpointsHealthy condition.
const (
	// IntentReasonAllHealthy: every backend (or ExternalName target)
	// passes.
	IntentReasonAllHealthy = "AllHealthy"
	// IntentReasonDegraded: some backends or targets are out of traffic;
	// the healthy ones carry it, so Ready stays True.
	IntentReasonDegraded = "Degraded"
	// IntentReasonBelowHealthyFloor: fewer than minHealthyPercent are
	// healthy, so every pod-ready backend is kept in traffic.
	IntentReasonBelowHealthyFloor = "BelowHealthyFloor"
	// IntentReasonNoBackends: no backend is usable.
	IntentReasonNoBackends = "NoBackends"
	// IntentReasonNoHealthyTarget: no ExternalName target passes its
	// probe; the target published last stays published.
	IntentReasonNoHealthyTarget = "NoHealthyTarget"
)

// EndpointReason says why an endpoint is out of traffic, in an intent's
// status.endpoints.unhealthy.
// +kubebuilder:validation:Enum=NotReady;ProbeFailed;ForbiddenTarget;NoSuchPort;FamilyNotServed
type EndpointReason string

// The reasons an endpoint is out of traffic.
const (
	// EndpointReasonNotReady: the backing pod is not Ready.
	EndpointReasonNotReady EndpointReason = "NotReady"
	// EndpointReasonProbeFailed: the endpoint fails its active probe; the
	// message has the class of the failure.
	EndpointReasonProbeFailed EndpointReason = "ProbeFailed"
	// EndpointReasonForbiddenTarget: the prober never dials the address,
	// so it can never pass its probe.
	EndpointReasonForbiddenTarget EndpointReason = "ForbiddenTarget"
	// EndpointReasonNoSuchPort: the pod has no container port of the
	// targetPort's name.
	EndpointReasonNoSuchPort EndpointReason = "NoSuchPort"
	// EndpointReasonFamilyNotServed: a static backend's address family is
	// not one of the Service's IP families.
	EndpointReasonFamilyNotServed EndpointReason = "FamilyNotServed"
)
