// Package testtool lets ferry's tests require the real tools they run
// (mtools, fw_printenv, skopeo, docker-registry, ...) in one way: where a
// tool is missing a developer's test run skips the test, naming the Debian
// package to install, and a CI run (CI set in the environment, as
// .ci/run's environment does) fails it, so no test passes there without
// testing.
//
// It imports no ferry package, so any package's tests may use it, even
// the in-package tests of packages that internal/testutil depends on. It is
// for _test.go files only (internal/testutil's depcheck test keeps it so).
package testtool
