// Package e2e walks netintent's install path the way a user does, against a
// local control plane: kustomize install into a Pod Security restricted
// namespace, the built binary run as a separate process with only the RBAC
// the install grants, the samples applied with kubectl, DNS and metrics
// queried over real sockets, and a clean shutdown; and the image that
// `make image` built, run with runc as the Deployment runs it. Run it with
// `make test-e2e`.
package e2e
