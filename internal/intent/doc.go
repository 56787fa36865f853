// Package intent computes, without any API client, the Kubernetes objects a
// NetworkIntent declares: its Service and the status derived from what the
// API server reports back.
package intent
