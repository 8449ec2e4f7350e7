package verify_test

import (
	"slices"
	"testing"

	"github.com/ferry-update/ferry/internal/depcheck"
)

// TestDepcheck keeps verify free of network I/O (STYLE.md): it decides
// trust over bytes it is handed. It imports no network package itself,
// nothing it depends on speaks HTTP or TLS, and no transport or host
// package is among its dependencies. It is also part of the device tier.
func TestDepcheck(t *testing.T) {
	const m = depcheck.Module
	for _, imp := range depcheck.Imports(t, m+"/verify") {
		if imp == "net" || depcheck.Under(imp, "net/http") || imp == "crypto/tls" {
			t.Errorf("verify imports %s", imp)
		}
	}
	deps := depcheck.Deps(t, nil, m+"/verify")
	depcheck.Forbid(t, deps, "net/http", "crypto/tls", "net/rpc", "net/smtp",
		m+"/transport", m+"/mirror", m+"/media", m+"/agent", m+"/audit", m+"/cmd",
		m+"/registry", m+"/tufrepo", m+"/devices")
	if !slices.ContainsFunc(deps, func(d depcheck.Dep) bool { return d.Path == m+"/bundle" }) {
		t.Errorf("go list -deps verify does not list bundle: %v", deps)
	}
	depcheck.Device(t, m+"/verify")
}
