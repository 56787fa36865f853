// Package controllers holds netintent's reconcilers: NetworkIntent to Service
// and EndpointSlices, and LoadBalancer addresses from AddressPools.
package controllers
