package display

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a size given by a person: "auto" or "" (0: the caller's
// default), or a number of bytes with an optional unit: B,
// KiB, MiB, GiB, TiB (K, M, G, T and KB, MB, GB, TB are read as the same
// powers of 1024, as disk sizes usually are).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "auto") || t == "" {
		return 0, nil
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30, "gib": 30, "t": 40, "tb": 40, "tib": 40}
	sh, ok := shift[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (want auto, or a number with B, KiB, MiB, GiB or TiB)", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f > float64(int64(1)<<62>>sh) {
		return 0, fmt.Errorf("size %q: want auto, or a positive number such as 8GiB", s)
	}
	return int64(f * float64(int64(1)<<sh)), nil
}
