// Package failover decides which target an ExternalName alias publishes:
// it fails over from a target that fails, and fails back to a
// higher-priority one as the intent's failback policy says. It is pure: the
// caller brings the targets' health and the time.
package failover
