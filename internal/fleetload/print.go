package fleetload

import (
	"fmt"
	"io"
	"time"

	"github.com/ferry-update/ferry/devices"
)

// Growth extrapolates the device database's size from a run: bytes per
// recorded check-in, what 10,000 device-days of check-ins at the run's
// rate would add without the history cap, and what 10,000 devices hold
// with it (devices.HistoryPerDevice check-ins each, reached after that
// many check-ins; the database stops growing there).
type Growth struct {
	PerCheckin float64
	// CheckinsPerDeviceDay is two per poll (the assignment request is a
	// recorded check-in too).
	CheckinsPerDeviceDay float64
	Uncapped10kDays      float64 // bytes per 10,000 device-days, no cap
	Capped10k            float64 // bytes of history for 10,000 devices at the cap
	CapReachedAfter      time.Duration
}

// Extrapolate computes the Growth of a run that recorded n check-ins,
// the database growing from before to after bytes, polling every interval.
func Extrapolate(before, after int64, n int, interval time.Duration) Growth {
	var g Growth
	if n <= 0 || interval <= 0 {
		return g
	}
	g.PerCheckin = float64(after-before) / float64(n)
	g.CheckinsPerDeviceDay = 2 * float64(24*time.Hour) / float64(interval)
	g.Uncapped10kDays = g.PerCheckin * g.CheckinsPerDeviceDay * 10000
	g.Capped10k = g.PerCheckin * devices.HistoryPerDevice * 10000
	g.CapReachedAfter = time.Duration(float64(devices.HistoryPerDevice) / g.CheckinsPerDeviceDay * float64(24*time.Hour))
	return g
}

// Print writes a run's results as a table.
func Print(w io.Writer, res *Result, chk *Check, sizeBefore, sizeAfter int64, interval time.Duration) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "%-12s %8s %7s %9s %9s %9s %9s\n", "request", "n", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, s := range res.Kinds {
		fmt.Fprintf(w, "%-12s %8d %7d %9s %9s %9s %9s\n", s.Kind, s.N, s.Errors, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max))
		for _, e := range s.FirstErrors {
			fmt.Fprintf(w, "    %s\n", e)
		}
	}
	secs := res.Elapsed.Seconds()
	fmt.Fprintf(w, "polls %d in %.0f s (%.1f/s, %.1f requests/s)\n", res.Polls, secs, float64(res.Polls)/secs, 2*float64(res.Polls)/secs)
	d := res.Downloads
	fmt.Fprintf(w, "downloads: %d started, %d done, %d failed, %d cut at the end; %.1f GiB (%.0f MiB/s), slowest %.0f s\n",
		d.Started, d.Done, d.Failed, d.Unfinished, float64(d.Bytes)/(1<<30), float64(d.Bytes)/(1<<20)/secs, d.Slowest.Seconds())
	for _, e := range d.FirstErrors {
		fmt.Fprintf(w, "    %s\n", e)
	}
	fmt.Fprintf(w, "reports: %d sent, %d acknowledged, %d recorded: %d lost, %d not taken, %d recorded unacknowledged\n",
		chk.Sent, chk.Acked, chk.Recorded, chk.Lost, chk.NotTaken, chk.Unacknowledged)
	for _, p := range chk.Problems {
		fmt.Fprintf(w, "    %s\n", p)
	}
	g := Extrapolate(sizeBefore, sizeAfter, chk.Recorded, interval)
	fmt.Fprintf(w, "database: %.1f MiB before, %.1f MiB after: %.0f bytes per recorded check-in\n",
		float64(sizeBefore)/(1<<20), float64(sizeAfter)/(1<<20), g.PerCheckin)
	fmt.Fprintf(w, "  per 10,000 device-days (%.0f check-ins a device-day): %.1f GiB without the history cap; with it (%d per device) %.0f MiB for 10,000 devices, reached after %s\n",
		g.CheckinsPerDeviceDay, g.Uncapped10kDays/(1<<30), devices.HistoryPerDevice, g.Capped10k/(1<<20), g.CapReachedAfter.Round(time.Minute))
}
