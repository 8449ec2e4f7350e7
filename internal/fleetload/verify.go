package fleetload

import (
	"fmt"
	"sort"

	"github.com/ferry-update/ferry/devices"
)

// Check compares what the devices sent with what the mirror recorded.
type Check struct {
	Devices int
	// Sent are the signed check-ins sent (to either endpoint), Acked
	// those the mirror answered as recorded, Recorded those its database
	// counts for the devices.
	Sent, Acked, Recorded int
	// Lost are check-ins the mirror acknowledged that its database does
	// not hold; NotTaken those it did not acknowledge (an error or no
	// answer) and did not record either. Both must be 0.
	Lost, NotTaken int
	// Unacknowledged are check-ins recorded whose answer the device did
	// not get (a request timed out after the mirror stored it).
	Unacknowledged int
	// Problems describe the first devices whose records disagree.
	Problems []string `json:",omitempty"`
}

// OK says no report was lost or left untaken.
func (c *Check) OK() bool { return c.Lost == 0 && c.NotTaken == 0 && len(c.Problems) == 0 }

// Verify compares res with the device records the mirror's database
// holds (devices.Store Records), which started empty of check-ins: each
// device's recorded check-ins must be the ones it sent and the mirror
// acknowledged, and its highest accepted counter the last of them.
func Verify(res *Result, recs []devices.Record) *Check {
	byID := make(map[string]*devices.Record, len(recs))
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	c := &Check{Devices: len(res.Devices)}
	ids := make([]string, 0, len(res.Devices))
	for id := range res.Devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	problem := func(format string, a ...any) {
		if len(c.Problems) < maxErrors {
			c.Problems = append(c.Problems, fmt.Sprintf(format, a...))
		}
	}
	for _, id := range ids {
		s := res.Devices[id]
		c.Sent += s.Sent
		c.Acked += s.Acked
		rec := byID[id]
		if rec == nil {
			if s.Sent > 0 {
				problem("device %s: sent %d check-ins, the mirror has no record of it", id[:16], s.Sent)
			}
			c.Lost += s.Acked
			c.NotTaken += s.Sent - s.Acked
			continue
		}
		if rec.Status != devices.Enrolled {
			problem("device %s is %s on the mirror, want enrolled", id[:16], rec.Status)
		}
		got := int(rec.Checkins)
		c.Recorded += got
		switch {
		case got < s.Acked:
			c.Lost += s.Acked - got
			problem("device %s: %d check-ins acknowledged, %d recorded", id[:16], s.Acked, got)
		case got > s.Sent:
			problem("device %s: %d check-ins recorded, only %d sent", id[:16], got, s.Sent)
		default:
			c.Unacknowledged += got - s.Acked
			c.NotTaken += s.Sent - got
		}
		if rec.Counter < s.LastAcked {
			problem("device %s: the mirror's counter %d is below %d, the last acknowledged", id[:16], rec.Counter, s.LastAcked)
		}
	}
	return c
}
