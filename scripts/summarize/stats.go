package main

import (
	"fmt"
	"math"
	"strings"
)

// stat is the mean and sample standard deviation of per-seed values (NaN
// values, from runs or evaluations that are missing, are left out).
type stat struct {
	Mean, SD float64
	N        int
}

func summarise(xs []float64) stat {
	var s stat
	var sum float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			sum += x
			s.N++
		}
	}
	if s.N == 0 {
		return stat{Mean: math.NaN(), SD: math.NaN()}
	}
	s.Mean = sum / float64(s.N)
	if s.N > 1 {
		var ss float64
		for _, x := range xs {
			if !math.IsNaN(x) {
				ss += (x - s.Mean) * (x - s.Mean)
			}
		}
		s.SD = math.Sqrt(ss / float64(s.N-1))
	}
	return s
}

// format writes mean ± sd with the given decimals.
func (s stat) format(dec int) string {
	if s.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.*f ± %.*f", dec, s.Mean, dec, s.SD)
}

// pct writes a fraction as a percentage mean ± sd.
func (s stat) pct() string {
	if s.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%% ± %.0f", 100*s.Mean, 100*s.SD)
}

// Outcomes of one comparison.
const (
	supported    = "supported"
	contradicted = "contradicted"
	withinSpread = "within the seed spread"
	missing      = "not measured"
)

// compare says whether x < y (less true) or x > y (less false) beyond
// the seed spread: the means differ by more than the sum of the two
// standard deviations, so the mean ± sd bands do not overlap. With one
// seed there is no spread and nothing can be called separated.
func compare(x, y stat, less bool) string {
	if x.N == 0 || y.N == 0 {
		return missing
	}
	if x.N < 2 || y.N < 2 {
		return withinSpread
	}
	d := x.Mean - y.Mean
	if math.Abs(d) <= x.SD+y.SD {
		return withinSpread
	}
	if (d < 0) == less {
		return supported
	}
	return contradicted
}

// close says whether x and y are within the spread of each other
// (supported), or separated (contradicted).
func closeTo(x, y stat) string {
	switch c := compare(x, y, true); c {
	case withinSpread:
		if x.N < 2 || y.N < 2 {
			return withinSpread
		}
		return supported
	case supported, contradicted:
		return contradicted
	default:
		return c
	}
}

// part is one comparison of a claim.
type part struct {
	what    string
	outcome string
}

// verdict is a claim's agreement from its parts: true when every part is
// supported, false when any is contradicted, null (nil) otherwise.
func verdict(parts []part) *bool {
	all := true
	for _, p := range parts {
		if p.outcome == contradicted {
			f := false
			return &f
		}
		if p.outcome != supported {
			all = false
		}
	}
	if all && len(parts) > 0 {
		t := true
		return &t
	}
	return nil
}

// describeParts writes the parts as "what: outcome; ...".
func describeParts(parts []part) string {
	var out []string
	for _, p := range parts {
		out = append(out, p.what+": "+p.outcome)
	}
	return strings.Join(out, "; ")
}

// pairedDiff is the mean and sd of the per-seed differences x − y (seeds
// where either is missing left out), with the numbers of seeds where the
// difference is negative and positive. Pairing by seed removes what a seed
// does to every configuration alike (its data order and initial weights),
// which dominates the spread of each configuration on its own.
func pairedDiff(x, y vals) (d stat, below, above int) {
	var diffs []float64
	for i := range min(len(x), len(y)) {
		if !math.IsNaN(x[i]) && !math.IsNaN(y[i]) {
			diffs = append(diffs, x[i]-y[i])
			switch {
			case x[i] < y[i]:
				below++
			case x[i] > y[i]:
				above++
			}
		}
	}
	if len(diffs) == 0 {
		return stat{Mean: math.NaN(), SD: math.NaN()}, 0, 0
	}
	return summarise(diffs), below, above
}

// formatPaired writes a paired difference as "-0.012 ± 0.004 (3/3 below)",
// counting the seeds below (or above, when higher is better), with values
// multiplied by scale (100 and unit "%" for accuracies).
func formatPaired(x, y vals, scale float64, dec int, unit string, higherBetter bool) string {
	d, below, above := pairedDiff(x, y)
	if d.N == 0 {
		return "n/a"
	}
	count, word := below, "below"
	if higherBetter {
		count, word = above, "above"
	}
	return fmt.Sprintf("%+.*f%s ± %.*f (%d/%d %s)", dec, scale*d.Mean, unit, dec, scale*d.SD, count, d.N, word)
}
