package agent

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/verify"
)

// TestClockNeverGoesBack: a device without a real-time clock, whose clock
// resets to 1970, judges trust roots at the newest time it has seen, not at
// 1970: it refuses a root that had expired by then, and does not refuse
// everything.
func TestClockNeverGoesBack(t *testing.T) {
	epoch := time.Unix(0, 0)
	tests := []struct {
		name      string
		firstSeen time.Duration // the clock at the first start, from the root's expiry
		wantOK    bool
	}{
		{"clock reset after the root expired", time.Hour, false},
		{"clock reset while the root is valid", -10 * 24 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTrustEnv(t)
			expires := e.root1.Expires()
			// The first start sees a good clock and records it.
			e.cfg.Clock = func() time.Time { return expires.Add(tt.firstSeen) }
			if err := e.do(func(a *Agent) error { return nil }); err != nil {
				t.Fatal(err)
			}
			// Then the clock resets.
			e.cfg.Clock = func() time.Time { return epoch }
			var log bytes.Buffer
			e.cfg.Log = &log
			err := e.install(e.bundle(bundleSpec{version: "2.0.0", rootfs: "system 2"}))
			if !strings.Contains(log.String(), "warning: the clock reads 1970-01-01T00:00:00Z, before the time recorded at an earlier start") {
				t.Errorf("log does not tell the clock was behind:\n%s", log.String())
			}
			if tt.wantOK {
				if err != nil {
					t.Fatalf("install with a valid root and a reset clock: %v", err)
				}
				return
			}
			var re *verify.RootError
			if !errors.As(err, &re) || re.Kind != verify.RootExpired {
				t.Fatalf("install with an expired root and a reset clock: %v, want refused as expired", err)
			}
			var st *Status
			if err := e.do(func(a *Agent) (err error) { st, err = a.Status(); return err }); err != nil {
				t.Fatal(err)
			}
			if !st.Trust.RootExpired {
				t.Error("status does not flag the expired root")
			}
		})
	}
}
