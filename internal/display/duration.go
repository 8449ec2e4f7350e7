package display

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a lifetime given by a person: Nd (days, at most a
// century) or a Go duration such as 720h. It must be positive.
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100*366 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q: want Nd or a duration such as 720h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not in the future", s)
	}
	return d, nil
}
