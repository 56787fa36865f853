package v1alpha1

// Names netintent writes on, and reads from, the objects it works with: every
// package that needs one takes it from here.

// IntentFinalizer is on every NetworkIntent until the operator has removed
// its Service and EndpointSlices: owner references alone need a garbage
// collector, which not every control plane runs.
const IntentFinalizer = "networking.netintent.io/cleanup"

// Field managers of the operator's writes.
const (
	// FieldOwner is the server-side apply field manager of the objects the
	// operator produces from an intent: the Service and its EndpointSlices.
	FieldOwner = "netintent"
	// AddressFieldOwner is the field manager of the address reconciler's
	// writes to a Service's metadata (AnnotationAllocatedFromPool). It is
	// not FieldOwner, so that the intent's applies, which own every field
	// FieldOwner writes, never take the annotation over and drop it.
	AddressFieldOwner = "netintent-address-pool"
	// PodConditionFieldOwner is the field manager of the operator's pod
	// condition PodConditionBackendHealthy, in pods' status: its only
	// write to pods.
	PodConditionFieldOwner = "netintent-readiness-gate"
)

// The pod readiness gate (healthCheck.readinessGate).
const (
	// PodConditionBackendHealthy is the pod condition the operator sets
	// from an intent's active checks, and the conditionType of the
	// readiness gate that makes a pod Ready only when it is True.
	PodConditionBackendHealthy = "networking.netintent.io/backend-healthy"
	// LabelReadinessGate, set to ReadinessGateEnabled on a namespace, has
	// the admission policy of config/admission add the readiness gate
	// to each pod created there.
	LabelReadinessGate = "networking.netintent.io/readiness-gate"
	// ReadinessGateEnabled is the value of LabelReadinessGate that opts a
	// namespace in.
	ReadinessGateEnabled = "enabled"
	// BackendHealthyProbePassed is the reason of PodConditionBackendHealthy
	// True once the intent's active check has passed on the pod: the one
	// True that the checks have proven.
	BackendHealthyProbePassed = "ProbePassed"
	// BackendHealthyNotChecked is the reason of PodConditionBackendHealthy
	// True on a gated pod that no intent with healthCheck.readinessGate
	// selects: nothing holds it, and no check has passed on it.
	BackendHealthyNotChecked = "NotChecked"
)

// Labels on the objects produced from an intent.
const (
	// LabelIntent names the intent an object was produced from.
	LabelIntent = "networking.netintent.io/intent"
	// LabelManagedBy is the standard managed-by label.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy on the operator's objects.
	ManagedBy = "netintent"
	// EndpointSliceManagedBy is the endpointslice.kubernetes.io/managed-by
	// value of the EndpointSlices the operator writes.
	EndpointSliceManagedBy = "netintent.networking.netintent.io"
)

// Annotations netintent reads and writes on Services.
const (
	// AnnotationDNSTTL on a Service sets the TTL, in seconds, of the DNS
	// answers for its names, in place of the server's default. The
	// operator writes it from an intent's dns.ttl; the DNS server, which
	// reads Services only, reads it.
	AnnotationDNSTTL = "networking.netintent.io/dns-ttl"
	// AnnotationAddress on a plain Service of class AddressPoolClass asks
	// for that address. An intent's Service takes it from the intent's
	// loadBalancer.address instead.
	AnnotationAddress = "networking.netintent.io/address"
	// AnnotationPool on a plain Service of class AddressPoolClass names the
	// AddressPool to allocate from. An intent's Service takes it from the
	// intent's loadBalancer.pool instead.
	AnnotationPool = "networking.netintent.io/pool"
	// AnnotationAllocatedFromPool names the AddressPool a Service's address
	// was given from. netintent sets it with the address and removes it
	// with the address; an intent's status.loadBalancer.pool is read from
	// it.
	AnnotationAllocatedFromPool = "networking.netintent.io/allocated-from-pool"
)
