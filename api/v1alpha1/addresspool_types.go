package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddressPoolSpec declares addresses netintent may give to LoadBalancer
// Services of class networking.netintent.io/address-pool.
type AddressPoolSpec struct {
	// addresses are the pool's addresses: CIDRs (192.0.2.0/28, 2001:db8::/120)
	// or inclusive ranges (192.0.2.10-192.0.2.20), IPv4 and IPv6.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +kubebuilder:validation:items:MaxLength=90
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0]) && isIP(self.split('-')[1]) && ip(self.split('-')[0]).family() == ip(self.split('-')[1]).family())",message="each address entry must be a CIDR (192.0.2.0/28) or a range of one family (192.0.2.10-192.0.2.20)"
	Addresses []string `json:"addresses"`

	// autoAssign lets intents and Services that name no pool draw from this
	// one. Default true.
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// avoidBuggyIPs skips IPv4 addresses ending in .0 and .255, which some
	// old clients and routers mishandle.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// namespaceSelector chooses the namespaces whose Services may draw from
	// this pool. Empty: every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
}

// AddressPoolStatus is the use of a pool.
type AddressPoolStatus struct {
	// observedGeneration is the generation of the spec this status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// ipv4 counts the pool's IPv4 addresses.
	// +optional
	IPv4 *PoolCounts `json:"ipv4,omitempty"`

	// ipv6 counts the pool's IPv6 addresses.
	// +optional
	IPv6 *PoolCounts `json:"ipv6,omitempty"`

	// conditions: Ready (the pool is valid, does not overlap an older pool,
	// and is in use).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PoolCounts counts a pool's addresses of one family. Totals are decimal
// strings because an IPv6 pool can hold more than 2^63 addresses.
type PoolCounts struct {
	// total is the number of usable addresses.
	// +required
	Total string `json:"total"`
	// assigned is the number given to Services.
	// +required
	Assigned int64 `json:"assigned"`
	// free is total minus assigned.
	// +required
	Free string `json:"free"`
}

// AddressPool is a cluster-wide set of addresses that netintent gives to
// LoadBalancer Services of class networking.netintent.io/address-pool.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ap,categories=netintent
// +kubebuilder:printcolumn:name="Auto",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="IPv4 Free",type=string,JSONPath=`.status.ipv4.free`
// +kubebuilder:printcolumn:name="IPv6 Free",type=string,JSONPath=`.status.ipv6.free`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the pool's addresses and who may use them.
	// +required
	Spec AddressPoolSpec `json:"spec"`

	// status is the pool's use.
	// +optional
	Status AddressPoolStatus `json:"status,omitempty"`
}

// AddressPoolList is a list of AddressPools.
// +kubebuilder:object:root=true
type AddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AddressPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AddressPool{}, &AddressPoolList{})
}
