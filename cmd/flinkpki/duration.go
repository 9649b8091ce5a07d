package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flinkpki/flinkpki/ca"
)

const (
	day  = 24 * time.Hour
	year = 365 * day
)

var durationPart = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h|d|y)`)

// parseDuration reads Go duration syntax extended with the units d (24h)
// and y (365d), as certificate lifetimes are spoken of in days and years:
// "90d", "3y", "1y180d", "36h30m". Negative durations are refused; the
// server decides which lifetimes it accepts.
func parseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration: use e.g. 90d, 3y or 36h")
	}
	if in == "0" {
		return 0, nil
	}
	var total time.Duration
	for rest := in; rest != ""; {
		m := durationPart.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("invalid duration %q: use a number and a unit (ms, s, m, h, d, y), e.g. 90d, 3y or 36h", s)
		}
		rest = rest[len(m[0]):]
		var part time.Duration
		switch m[2] {
		case "d", "y":
			n, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q: %v", s, err)
			}
			unit := day
			if m[2] == "y" {
				unit = year
			}
			if n*float64(unit) >= math.MaxInt64 {
				return 0, errTooLong(s)
			}
			part = time.Duration(n * float64(unit))
		default:
			// The pattern has checked the syntax: the one way left for
			// time.ParseDuration to fail is a number too big for it.
			d, err := time.ParseDuration(m[0])
			if err != nil {
				return 0, errTooLong(s)
			}
			part = d
		}
		if part < 0 || total+part < total {
			return 0, errTooLong(s)
		}
		total += part
	}
	return total, nil
}

// errTooLong is the error for a duration past what a time.Duration holds.
func errTooLong(s string) error {
	return fmt.Errorf("duration %q is too long: the longest is %s", s, formatDuration(math.MaxInt64/day*day))
}

// durationFlag is a pflag value using parseDuration, so a malformed
// duration is a usage error at parse time. d is the default, shown in
// --help when not zero; min and max, when not zero, bound the value.
// signed lets a leading '-' through, for a command that refuses negative
// values itself with a message of its own (serve's checkRanges). orZero
// takes 0 (none) besides the bounded range.
type durationFlag struct {
	d        time.Duration
	set      bool
	min, max time.Duration
	signed   bool
	orZero   bool
}

func (f *durationFlag) String() string {
	if !f.set && f.d == 0 {
		return ""
	}
	return formatDuration(f.d)
}
func (f *durationFlag) Type() string { return "duration" }
func (f *durationFlag) Set(s string) error {
	in, neg := strings.TrimSpace(s), false
	if f.signed {
		in, neg = strings.CutPrefix(in, "-")
	}
	d, err := parseDuration(in)
	if err != nil {
		if neg {
			_, err = parseDuration(s) // the error quotes what was given
		}
		return err
	}
	if neg {
		d = -d
	}
	orZero := ""
	if f.orZero {
		orZero = ", or 0 for none"
	}
	switch {
	case f.min == 0 && f.max == 0, f.orZero && d == 0:
	case f.max == 0 && d < f.min:
		return fmt.Errorf("use a duration of at least %s%s", formatDuration(f.min), orZero)
	case f.max != 0 && (d < f.min || d > f.max):
		return fmt.Errorf("use a duration from %s to %s%s", formatDuration(f.min), formatDuration(f.max), orZero)
	}
	f.d, f.set = d, true
	return nil
}

// formatDuration prints a duration as parseDuration reads it and people
// speak of lifetimes: "90d", "1d12h", "15m", "1h30m", "45s".
func formatDuration(d time.Duration) string { return ca.FormatDuration(d) }
