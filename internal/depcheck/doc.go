// Package depcheck fences package dependencies in tests, as
// go-containerregistry's pkg/registry depcheck does: it asks the go
// command what a package depends on and fails the test when a dependency
// is on the wrong side of a line. A fence that cannot run fails too: a
// missing go command or a failing go list is an error, never a skip, so a
// broken fence cannot pass unnoticed.
//
// It is for _test.go files only, like internal/testutil.
//
// Device fences the device tier: every
// dependency of the agent, built as for a device on every architecture,
// is in the standard library, under one of the DeviceTier directories or
// in a DeviceModules module. Deps, Imports and Forbid draw stricter lines
// for single packages.
//
//	depcheck.Device(t, depcheck.Module+"/cmd/ferry-agent")
//	depcheck.Forbid(t, depcheck.Deps(t, nil, depcheck.Module+"/bundle"), depcheck.Module+"/transport")
package depcheck
