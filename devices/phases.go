package devices

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Amount is a number of devices, or a percentage of some.
type Amount struct {
	N       int
	Percent bool
}

// ParseAmount parses "3" or "10%" (0 to 100 %).
func ParseAmount(s string) (Amount, error) {
	num, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || (pct && n > 100) || n > 1_000_000 {
		return Amount{}, fmt.Errorf("%q: want a number of devices (3) or a percentage (10%%)", s)
	}
	return Amount{N: n, Percent: pct}, nil
}

func (a Amount) String() string {
	if a.Percent {
		return strconv.Itoa(a.N) + "%"
	}
	return strconv.Itoa(a.N)
}

// Of is the amount of n devices: a percentage rounded up (so 10% of 3
// is 1), a number at most n.
func (a Amount) Of(n int) int {
	if a.Percent {
		return (n*a.N + 99) / 100
	}
	return min(a.N, n)
}

// MarshalJSON writes "3" or "10%".
func (a Amount) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON reads "3", "10%" or 3.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want \"3\" or \"10%%\"")
		}
		s = strconv.Itoa(n)
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Phase is one step of a deployment.
type Phase struct {
	// Size is how many of the deployment's devices have been reached by
	// the end of the phase, counted from the start: "1" (a canary), "10%",
	// "100%". The last phase always reaches every device.
	Size Amount
	// Soak is how long the phase's devices must run, once every one of
	// them has reported, before the next phase starts.
	Soak time.Duration
	// MaxFailures is how many of the phase's devices may fail (a number,
	// or a percentage of the phase's devices, rounded down); one more
	// pauses the deployment.
	MaxFailures Amount
}

type phaseJSON struct {
	Size        Amount `json:"size"`
	Soak        string `json:"soak"`
	MaxFailures Amount `json:"maxFailures"`
}

// MarshalJSON writes {"size":"10%","soak":"1h0m0s","maxFailures":"0"}.
func (p Phase) MarshalJSON() ([]byte, error) {
	return json.Marshal(phaseJSON{p.Size, p.Soak.String(), p.MaxFailures})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Phase) UnmarshalJSON(b []byte) error {
	var j phaseJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	soak, err := time.ParseDuration(j.Soak)
	if j.Soak == "" {
		soak, err = 0, nil
	}
	if err != nil || soak < 0 {
		return fmt.Errorf("soak %q: want a duration such as 30m or 2h", j.Soak)
	}
	*p = Phase{Size: j.Size, Soak: soak, MaxFailures: j.MaxFailures}
	return nil
}

// MaxPhases bounds the phases of a deployment.
const MaxPhases = 16

// ParsePhases parses a deployment's phases: sizes separated by commas,
// each optionally followed by ":soak=DURATION" and ":fail=AMOUNT", e.g.
// "1:soak=1h,10%,50%:fail=5%,100%". A phase without them takes soak and
// maxFail.
func ParsePhases(s string, soak time.Duration, maxFail Amount) ([]Phase, error) {
	if soak < 0 {
		return nil, &SpecError{"phases", "a soak time is not negative"}
	}
	var out []Phase
	for i, item := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(item), ":")
		size, err := ParseAmount(parts[0])
		if err != nil {
			return nil, &SpecError{"phases", fmt.Sprintf("phase %d: size %v", i+1, err)}
		}
		p := Phase{Size: size, Soak: soak, MaxFailures: maxFail}
		for _, opt := range parts[1:] {
			k, v, _ := strings.Cut(opt, "=")
			switch k {
			case "soak":
				if p.Soak, err = time.ParseDuration(v); err != nil || p.Soak < 0 {
					return nil, &SpecError{"phases", fmt.Sprintf("phase %d: soak %q: want a duration such as 30m or 2h", i+1, v)}
				}
			case "fail":
				if p.MaxFailures, err = ParseAmount(v); err != nil {
					return nil, &SpecError{"phases", fmt.Sprintf("phase %d: fail %v", i+1, err)}
				}
			default:
				return nil, &SpecError{"phases", fmt.Sprintf("phase %d: %q: want soak=DURATION or fail=AMOUNT", i+1, opt)}
			}
		}
		out = append(out, p)
	}
	return out, checkPhases(out)
}

func checkPhases(ps []Phase) error {
	if len(ps) == 0 || len(ps) > MaxPhases {
		return &SpecError{"phases", fmt.Sprintf("%d phases: want 1 to %d", len(ps), MaxPhases)}
	}
	for i, p := range ps {
		if p.Size.N == 0 {
			return &SpecError{"phases", fmt.Sprintf("phase %d reaches no device", i+1)}
		}
		if i > 0 && p.Size.Percent == ps[i-1].Size.Percent && p.Size.N < ps[i-1].Size.N {
			return &SpecError{"phases", fmt.Sprintf("phase %d (%s) is smaller than phase %d (%s): sizes count from the start", i+1, p.Size, i, ps[i-1].Size)}
		}
		if p.Soak > 365*24*time.Hour {
			return &SpecError{"phases", fmt.Sprintf("phase %d: a soak of %s is more than a year", i+1, p.Soak)}
		}
	}
	return nil
}

// PhaseSizes splits n devices into the phases: how many each phase adds.
// A phase reaches Size.Of(n) devices in all (never fewer than the phase
// before); the last reaches the rest. A phase may add none (10% of 3
// after a canary of 1): it is passed at once.
func PhaseSizes(ps []Phase, n int) []int {
	out := make([]int, len(ps))
	reached := 0
	for i, p := range ps {
		upTo := max(reached, p.Size.Of(n))
		if i == len(ps)-1 {
			upTo = n
		}
		out[i] = upTo - reached
		reached = upTo
	}
	return out
}

// Verdict is what a phase's counts say: go on, wait, or stop.
type Verdict int

const (
	// Wait: devices have yet to report, or the soak time runs.
	Wait Verdict = iota
	// Advance: every device reported, few enough failed, the soak is over.
	Advance
	// Halt: more devices failed than the phase allows.
	Halt
)

// Judge says what a phase with these counts does at now: devices in
// the phase, of which succeeded and failed reported; doneAt is when the
// last of them reported (zero while some have not).
func (p Phase) Judge(devices, succeeded, failed int, doneAt, now time.Time) Verdict {
	if failed > p.allowedFailures(devices) {
		return Halt
	}
	if succeeded+failed < devices {
		return Wait
	}
	if devices > 0 && now.Before(doneAt.Add(p.Soak)) {
		return Wait
	}
	return Advance
}

// allowedFailures is MaxFailures of a phase of n devices, rounded down
// for a percentage.
func (p Phase) allowedFailures(n int) int {
	if p.MaxFailures.Percent {
		return n * p.MaxFailures.N / 100
	}
	return p.MaxFailures.N
}
