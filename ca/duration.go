package ca

import (
	"fmt"
	"strings"
	"time"
)

// FormatDuration prints a duration as operators give validities: in days,
// with the rest of a day in hours and below ("7d12h", "90d", "36h" is
// "1d12h", "15m"), without Go's trailing zero units.
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d < day {
		return trimZeroUnits(d.String())
	}
	s := fmt.Sprintf("%dd", d/day)
	if rest := d % day; rest != 0 {
		s += trimZeroUnits(rest.String())
	}
	return s
}

// trimZeroUnits drops the zero minutes and seconds Go prints after hours
// or minutes: "180h0m0s" is "180h", "1h30m0s" is "1h30m".
func trimZeroUnits(s string) string {
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
