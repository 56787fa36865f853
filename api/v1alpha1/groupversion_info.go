// Package v1alpha1 holds the netintent API: NetworkIntent, which declares how
// an application is reached, and AddressPool, which supplies LoadBalancer
// addresses where no cloud does.
// +kubebuilder:object:generate=true
// +groupName=networking.netintent.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "networking.netintent.io", Version: "v1alpha1"}

	// SchemeBuilder adds the kinds of this package to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
