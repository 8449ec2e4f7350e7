package bootenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseFwEnvConfig parses an /etc/fw_env.config file: one line per copy of
// the environment (two lines make it redundant), each
//
//	device  offset  size  [sectorsize  [sectors]]
//
// Numbers are read as libubootenv reads them (sscanf "%lli %zx %zx %lx"):
// the offset like a C integer literal (0x hex, leading 0 octal, else
// decimal, optionally negative), but size, sectorsize and sectors always in
// hexadecimal, with or without 0x, so "8192" means 0x8192. Lines starting
// with '#' and blank lines are skipped, and so is anything from a field
// starting with '#'.
//
// Where libubootenv silently skips a line it cannot parse, this is an error:
// a skipped line can turn a redundant environment into a single one, and
// then every save would write a layout the bootloader rejects.
func ParseFwEnvConfig(r io.Reader) ([]UBootLocation, error) {
	var locs []UBootLocation
	sc := bufio.NewScanner(r)
	for lineno := 1; sc.Scan(); lineno++ {
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if strings.HasPrefix(f, "#") {
				fields = fields[:i]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		loc, err := parseFwEnvLine(fields)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineno, err)
		}
		if len(locs) == 2 {
			return nil, fmt.Errorf("line %d: more than two environment copies", lineno)
		}
		locs = append(locs, loc)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(locs) == 0 {
		return nil, errors.New("no environment configured")
	}
	return locs, nil
}

func parseFwEnvLine(fields []string) (UBootLocation, error) {
	if len(fields) < 3 || len(fields) > 5 {
		return UBootLocation{}, fmt.Errorf("want \"device offset size [sectorsize [sectors]]\", got %d fields", len(fields))
	}
	loc := UBootLocation{Device: fields[0]}
	var err error
	if loc.Offset, err = parseCInt(fields[1]); err != nil {
		return loc, fmt.Errorf("offset: %w", err)
	}
	nums := []*int64{&loc.Size, &loc.SectorSize, &loc.Sectors}
	for i, f := range fields[2:] {
		if *nums[i], err = parseHex(f); err != nil {
			return loc, fmt.Errorf("%s: %w", [...]string{"size", "sectorsize", "sectors"}[i], err)
		}
	}
	if loc.Size == 0 {
		return loc, errors.New("size is zero")
	}
	return loc, nil
}

// parseCInt parses s as strtoll(s, NULL, 0) does, but requires all of s to
// be the number: an optional sign, then 0x or 0X and hex digits, 0 and
// octal digits, or decimal digits.
func parseCInt(s string) (int64, error) {
	sign, digits := "", s
	if strings.HasPrefix(digits, "-") || strings.HasPrefix(digits, "+") {
		sign, digits = digits[:1], digits[1:]
	}
	base := 10
	switch {
	case len(digits) > 2 && (digits[:2] == "0x" || digits[:2] == "0X"):
		base, digits = 16, digits[2:]
	case len(digits) > 1 && digits[0] == '0':
		base, digits = 8, digits[1:]
	}
	if digits == "" || digits[0] == '-' || digits[0] == '+' {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseInt(sign+digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// parseHex parses a hexadecimal number with an optional 0x or 0X prefix.
func parseHex(s string) (int64, error) {
	digits := s
	if len(digits) > 2 && (digits[:2] == "0x" || digits[:2] == "0X") {
		digits = digits[2:]
	}
	if digits == "" || digits[0] == '-' || digits[0] == '+' {
		return 0, fmt.Errorf("%q is not a hexadecimal number", s)
	}
	v, err := strconv.ParseInt(digits, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a hexadecimal number", s)
	}
	return v, nil
}
