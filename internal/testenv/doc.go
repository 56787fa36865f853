// Package testenv is the repository's one test harness: it starts the
// control plane (kube-apiserver and etcd from bin/k8s, through envtest), runs
// the operator in process or as the built binary, finds free loopback
// addresses, serves a fake upstream DNS server, waits with apimachinery's poll
// helpers, and builds the objects tests make (intents, pods, pools). The test
// suites of every package, hack/local and test/bench use it, so that a test
// reads as what it checks.
//
// Functions that take a testing.TB fail the test and clean up when it ends;
// the others return errors, for the commands that use the harness.
package testenv
