// Package testutil holds helpers shared by ferry's tests: keys, signed
// bundles and a real OCI registry on a loopback port.
//
// It is for _test.go files only; no package that ships in a binary may
// import it (depcheck_test.go keeps it so). Every helper takes a
// testing.TB and fails or skips the test itself.
package testutil
