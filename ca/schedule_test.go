package ca

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func TestDefaultMargin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		leaf time.Duration
		want time.Duration
	}{
		{"short leaves get the one-week floor", 24 * time.Hour, MinMargin},
		{"28-day leaves sit exactly on the floor", 28 * day, 7 * day},
		{"90-day leaves get a quarter", 90 * day, 90 * day / 4},
	}
	for _, tt := range tests {
		if got := DefaultMargin(tt.leaf); got != tt.want {
			t.Errorf("%s: DefaultMargin(%s) = %s, want %s", tt.name, tt.leaf, got, tt.want)
		}
	}
}

func TestNextStepAtEveryThreshold(t *testing.T) {
	t.Parallel()
	const leaf, margin, validity = 90 * day, 30 * day, 3 * 365 * day
	active := fakeCA(1, StateActive, t0, validity)
	prepared := fakeCA(2, StatePrepared, t0.Add(100*day), validity)
	retiringAt := t0.Add(200 * day)
	retiring := fakeCA(1, StateRetiring, t0, validity)
	retiring.Retiring = retiringAt
	newActive := fakeCA(2, StateActive, t0.Add(100*day), validity)

	// Activation and retirement wait L and the clock skew allowed (5 min).
	prepareAt := t0.Add(validity - 2*leaf - margin)
	activateAt := t0.Add(100*day + leaf + 5*time.Minute)
	retireAt := retiringAt.Add(leaf + 5*time.Minute)
	// Prepared 10 days before the active CA expires, and retiring from then.
	latePrepared := fakeCA(2, StatePrepared, t0.Add(validity-10*day), validity)
	lateRetiring := fakeCA(1, StateRetiring, t0, validity)
	lateRetiring.Retiring = t0.Add(validity - 10*day)
	activeEnds := active.NotAfter().Add(5 * time.Minute)
	noCert := *active
	noCert.Cert = nil
	tests := []struct {
		name    string
		lineage Lineage
		now     time.Time
		want    Step
	}{
		{"an empty lineage has no step", nil, t0, Step{Kind: StepNone}},
		{"prepare is not due one nanosecond early", Lineage{active}, prepareAt.Add(-time.Nanosecond), Step{StepPrepare, prepareAt, "internal-2", false}},
		{"prepare is due at 2L plus margin before expiry", Lineage{active}, prepareAt, Step{StepPrepare, prepareAt, "internal-2", true}},
		{"prepare stays due after the threshold", Lineage{active}, prepareAt.Add(time.Nanosecond), Step{StepPrepare, prepareAt, "internal-2", true}},
		{"activate is not due one nanosecond early", Lineage{active, prepared}, activateAt.Add(-time.Nanosecond), Step{StepActivate, activateAt, "internal-2", false}},
		{"activate is due L (and the skew) after prepare", Lineage{active, prepared}, activateAt, Step{StepActivate, activateAt, "internal-2", true}},
		{"activate stays due after the threshold", Lineage{active, prepared}, activateAt.Add(time.Nanosecond), Step{StepActivate, activateAt, "internal-2", true}},
		{"retire is not due one nanosecond early", Lineage{retiring, newActive}, retireAt.Add(-time.Nanosecond), Step{StepRetire, retireAt, "internal-1", false}},
		{"retire is due L (and the skew) after the CA stopped signing", Lineage{retiring, newActive}, retireAt, Step{StepRetire, retireAt, "internal-1", true}},
		{"retire stays due after the threshold", Lineage{retiring, newActive}, retireAt.Add(time.Nanosecond), Step{StepRetire, retireAt, "internal-1", true}},
		// A rotation started late: the active CA expires sooner than L after
		// the prepare, and no leaf it signed outlives it.
		{"a late activate is due when the active CA expires", Lineage{active, latePrepared}, activeEnds, Step{StepActivate, activeEnds, "internal-2", true}},
		{"a late activate is not due before the active CA expires", Lineage{active, latePrepared}, activeEnds.Add(-time.Nanosecond), Step{StepActivate, activeEnds, "internal-2", false}},
		{"a late retire is due when the retiring CA expires", Lineage{lateRetiring, newActive}, activeEnds, Step{StepRetire, activeEnds, "internal-1", true}},
		{"a late retire is not due before the retiring CA expires", Lineage{lateRetiring, newActive}, activeEnds.Add(-time.Nanosecond), Step{StepRetire, activeEnds, "internal-1", false}},
		// A CA without its certificate has no expiry to come sooner.
		{"an active CA without a certificate never makes activate due early", Lineage{&noCert, latePrepared}, activeEnds, Step{StepActivate, latePrepared.Created.Add(leaf + 5*time.Minute), "internal-2", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := NextStep(tt.lineage, leaf, margin, tt.now)
			if got.Kind != tt.want.Kind || !got.At.Equal(tt.want.At) || got.CAID != tt.want.CAID || got.Due != tt.want.Due {
				t.Fatalf("NextStep = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidateValidity(t *testing.T) {
	t.Parallel()
	const leaf, margin = 90 * day, 30 * day
	need := 4*leaf + margin
	tests := []struct {
		name             string
		ca, leaf, margin time.Duration
		wantErr          bool
	}{
		{"the defaults are valid", DefaultCAValidity, 90 * day, DefaultMargin(90 * day), false},
		{"a CA one nanosecond short of 4L plus margin is refused", need - time.Nanosecond, leaf, margin, true},
		{"a CA of 3L plus margin is refused: its successor would be prepared late and leaves cut short", 3*leaf + margin, leaf, margin, true},
		{"a CA of exactly 4L plus margin is accepted", need, leaf, margin, false},
		{"a CA one nanosecond longer is accepted", need + time.Nanosecond, leaf, margin, false},
		{"a zero CA validity is refused", 0, leaf, margin, true},
		{"a negative leaf validity is refused", DefaultCAValidity, -time.Hour, margin, true},
		{"a zero leaf validity is refused", DefaultCAValidity, 0, margin, true},
		{"a zero margin is refused", DefaultCAValidity, leaf, 0, true},
		{"an absurd leaf validity is refused instead of overflowing", DefaultCAValidity, 1 << 62, margin, true},
		{"a 70-year leaf under a 1-day CA is refused (4L plus margin overflowed below 100 years)", day, 25550 * day, margin, true},
		{"a 50-year leaf under a CA long enough is accepted", 4*maxLeafValidity + margin, maxLeafValidity, margin, false},
		{"the longest leaf and margin do not overflow 4L plus margin", 4*maxLeafValidity + maxLeafValidity, maxLeafValidity, maxLeafValidity, false},
	}
	for _, tt := range tests {
		err := ValidateValidity(tt.ca, tt.leaf, tt.margin)
		if tt.wantErr != errors.Is(err, ErrInvalidValidity) || tt.wantErr != (err != nil) {
			t.Errorf("%s: ValidateValidity error = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestValidateValidityExplainsTheShortfallInDays(t *testing.T) {
	t.Parallel()
	err := ValidateValidity(200*day, 90*day, 30*day)
	want := "invalid validity: CA validity 200d is shorter than four leaf validities of 90d plus the rotation margin of 30d (390d); lengthen the CA validity or shorten the leaf validity"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
}

func TestValidateValiditySpeaksInDaysAndHoursOnly(t *testing.T) {
	t.Parallel()
	err := ValidateValidity(30*day, 30*day, 180*time.Hour)
	want := "CA validity 30d is shorter than four leaf validities of 30d plus the rotation margin of 7d12h (127d12h)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v\nwant it to contain %s", err, want)
	}
	for d, want := range map[time.Duration]string{
		36 * time.Hour: "1d12h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s",
		day + 90*time.Second: "1d1m30s", 3 * day: "3d", 2 * time.Hour: "2h",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestClockSkewIsFiveMinutesOrATenthOfShortLeaves: the clock skew allowed
// between the servers of one lineage is five minutes, as Kerberos allows,
// and a tenth of the leaf validity when that is shorter (tests run the
// schedule on leaves of seconds).
func TestClockSkewIsFiveMinutesOrATenthOfShortLeaves(t *testing.T) {
	t.Parallel()
	for leaf, want := range map[time.Duration]time.Duration{
		90 * day:         5 * time.Minute,
		time.Hour:        5 * time.Minute,
		50 * time.Minute: 5 * time.Minute,
		10 * time.Minute: time.Minute,
		time.Second:      100 * time.Millisecond,
	} {
		if got := ClockSkew(leaf); got != want {
			t.Errorf("ClockSkew(%s) = %s, want %s", leaf, got, want)
		}
	}
}
