package v1alpha1

// Annotations netintent reads and writes on Services.
const (
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
