package main

import (
	"fmt"
	"math"
	"strings"
)

// lengths are the reference lengths of the claims: the training length,
// the evaluated length nearest to 10x it (the paper's "about 10x") and the
// longest evaluated, of one measurement.
type lengths struct{ short, mid, long int }

func refLengths(s *Summary, get func(*Config) map[string]vals) lengths {
	ref := lengths{short: s.TrainLen}
	best := math.Inf(1)
	for _, c := range configs {
		for _, L := range lengthKeys(get(s.Configs[c])) {
			ref.long = max(ref.long, L)
			if d := math.Abs(math.Log(float64(L) / float64(10*s.TrainLen))); d < best {
				best, ref.mid = d, L
			}
		}
	}
	return ref
}

// claimLengths returns the reference lengths of the length-loss and the
// retrieval measurements, which the claims and the paired table both use.
func (s *Summary) claimLengths() (loss, acc lengths) {
	return refLengths(s, func(c *Config) map[string]vals { return c.LengthLoss }),
		refLengths(s, func(c *Config) map[string]vals { return c.Retrieval })
}

func appendUnique(xs []int, x int) []int {
	for _, y := range xs {
		if y == x {
			return xs
		}
	}
	return append(xs, x)
}

// short names for the text.
func tag(c string) string { return "(" + c[:1] + ")" }

// claims evaluates the paper's five claims.
// minRetrieval is the accuracy at the training length below which the
// retrieval claim is not testable: the models do not do the task at all.
// It is at least three times chance (a 1-digit value is guessed 10% of the
// time).
func minRetrieval(s *Summary) float64 { return max(0.10, 3*s.chance()) }

// notTestable starts the measured text of a claim that the runs cannot
// test (the report's verdict column says so).
const notTestable = "not testable here"

func claims(s *Summary) []Claim {
	C := s.Configs
	lossRef, accRef := s.claimLengths()
	val := func(c string) stat { return summarise(C[c].ValLoss) }
	loss := func(c string, L int) stat { return at(C[c].LengthLoss, L) }
	acc := func(c string, L int) stat { return at(C[c].Retrieval, L) }
	att := func(c string, L int) stat { return at(C[c].KeyAttention, L) }
	lt, lm, ll := s.TrainLen, accRef.mid, lossRef.long
	var out []Claim

	// 1. Training loss.
	var parts []part
	var nums []string
	for _, c := range configs[:4] {
		nums = append(nums, fmt.Sprintf("%s %s", tag(c), val(c).format(4)))
	}
	for _, c := range configs[1:4] {
		parts = append(parts, part{tag(c) + " < (a)", compare(val(c), val("a-softmax"), true)})
	}
	dLowest := supported
	for _, c := range []string{"b-ssmax", "c-fixed"} {
		switch o := compare(val("d-bias"), val(c), true); o {
		case contradicted:
			dLowest = contradicted
		case supported:
		default:
			if dLowest != contradicted {
				dLowest = o
			}
		}
	}
	parts = append(parts, part{"(d) lowest of (b)-(d)", dLowest})
	out = append(out, Claim{
		Claim:    "1. Training loss: SSMax variants (b)-(d) below softmax (a); the bias variant (d) lowest",
		Paper:    "SSMax (b)-(d) reach lower pretraining loss than softmax (a), the bias variant (d) lowest (Figure 2)",
		Measured: fmt.Sprintf("final validation loss (nats/byte, mean ± sd over seeds): %s. %s", strings.Join(nums, ", "), describeParts(parts)),
		Agrees:   verdict(parts),
	})

	// 2. Loss beyond the training length with RoPE theta x50.
	parts = nil
	nums = nil
	for _, c := range configs {
		nums = append(nums, fmt.Sprintf("%s %s", tag(c), loss(c, ll).format(3)))
	}
	parts = append(parts,
		part{fmt.Sprintf("(b) < (a) at %d", ll), compare(loss("b-ssmax", ll), loss("a-softmax", ll), true)},
		part{fmt.Sprintf("(c) < (a) at %d", ll), compare(loss("c-fixed", ll), loss("a-softmax", ll), true)},
		part{fmt.Sprintf("(d) > (b) at %d (degrades)", ll), compare(loss("d-bias", ll), loss("b-ssmax", ll), false)},
		part{fmt.Sprintf("(e) > (a) at %d (poor at short contexts)", lt), compare(loss("e-convert-finetune", lt), loss("a-softmax", lt), false)},
		part{fmt.Sprintf("(f) < (a) at %d", ll), compare(loss("f-switch", ll), loss("a-softmax", ll), true)},
		part{fmt.Sprintf("(f) close to (b) at %d", ll), closeTo(loss("f-switch", ll), loss("b-ssmax", ll))},
	)
	out = append(out, Claim{
		Claim: "2. Long context: with RoPE theta x50 and no retraining, (b) and (c) keep loss below (a) far beyond the training length; (d) degrades; (e) is poor at short contexts; (f) comes close to (b)",
		Paper: "Figure 3: (b), (c) lower than (a) up to 20k tokens (training length 1024); (d) rises at long contexts; (e) worse at short contexts; (f) close to (b)",
		Measured: fmt.Sprintf("loss at context sizes %d-%d of %d-token samples (%dx the training length %d; nats/byte): %s; at the training length: (a) %s, (e) %s. %s",
			ll/2+1, ll, ll, ll/s.TrainLen, s.TrainLen, strings.Join(nums, ", "), loss("a-softmax", lt).format(3), loss("e-convert-finetune", lt).format(3), describeParts(parts)),
		Agrees: verdict(parts),
	})

	// 3. Key retrieval.
	parts = nil
	nums = nil
	for _, c := range configs {
		nums = append(nums, fmt.Sprintf("%s %s at %d, %s at %d", tag(c), acc(c, lt).pct(), lt, acc(c, lm).pct(), lm))
	}
	parts = append(parts,
		part{fmt.Sprintf("(a) at %d < (a) at %d (fails beyond short contexts)", lm, lt), compare(acc("a-softmax", lm), acc("a-softmax", lt), true)},
		part{fmt.Sprintf("(b) > (a) at %d", lm), compare(acc("b-ssmax", lm), acc("a-softmax", lm), false)},
		part{fmt.Sprintf("(c) < (b) at %d", lm), compare(acc("c-fixed", lm), acc("b-ssmax", lm), true)},
		part{fmt.Sprintf("(d) < (b) at %d", lm), compare(acc("d-bias", lm), acc("b-ssmax", lm), true)},
		part{fmt.Sprintf("(e) > (a) at %d", lm), compare(acc("e-convert-finetune", lm), acc("a-softmax", lm), false)},
		part{fmt.Sprintf("(f) > (a) at %d", lm), compare(acc("f-switch", lm), acc("a-softmax", lm), false)},
	)
	c3 := Claim{
		Claim: "3. Key retrieval: (a) fails beyond short contexts; (b) stays accurate at about 10x the training length; (c), (d) below (b); (e), (f) only partly better than (a)",
		Paper: "Figure 5: needle retrieval with RoPE theta x50; (b) accurate to about 10x the training length, (a) fails beyond short contexts, (c), (d) below (b), (e), (f) partly better than (a)",
		Measured: fmt.Sprintf("exact match of %s (RoPE theta x50, mean ± sd over seeds): %s. %s",
			s.taskText(), strings.Join(nums, "; "), describeParts(parts)),
		Agrees: verdict(parts),
	}
	// Decay beyond the training length means something only for models
	// that retrieve at it.
	best := 0.0
	for _, c := range configs {
		if a := acc(c, lt); a.N > 0 {
			best = max(best, a.Mean)
		}
	}
	if floor := minRetrieval(s); best < floor {
		c3.Measured = fmt.Sprintf(notTestable+": no configuration retrieves at the training length %d (best mean accuracy %.0f%%, below %.0f%%), so there is no accuracy to lose beyond it. %s",
			lt, 100*best, 100*floor, c3.Measured)
		c3.Agrees = nil
	}
	out = append(out, c3)

	// 4. Attention on the key.
	parts = nil
	nums = nil
	for _, c := range []string{"a-softmax", "b-ssmax"} {
		nums = append(nums, fmt.Sprintf("%s %s at %d, %s at %d", tag(c), att(c, lt).format(3), lt, att(c, lm).format(3), lm))
	}
	parts = append(parts,
		part{fmt.Sprintf("(a) at %d < (a) at %d (spreads away)", lm, lt), compare(att("a-softmax", lm), att("a-softmax", lt), true)},
		part{fmt.Sprintf("(b) > (a) at %d (stays concentrated)", lm), compare(att("b-ssmax", lm), att("a-softmax", lm), false)},
	)
	out = append(out, Claim{
		Claim: "4. Attention on the key: (a) spreads attention away from it as context grows; (b) keeps it concentrated",
		Paper: "Figure 6: the attention score on the needle at the answer position is high for SSMax and low for softmax at long contexts",
		Measured: fmt.Sprintf("attention of the answering query's most retrieving head on the target record (RoPE theta x50): %s. %s",
			strings.Join(nums, "; "), describeParts(parts)),
		Agrees: verdict(parts),
	})

	// 5. Retrofits.
	parts = nil
	for _, c := range []string{"e-convert-finetune", "f-switch"} {
		parts = append(parts,
			part{fmt.Sprintf("%s loss < (a) at %d", tag(c), ll), compare(loss(c, ll), loss("a-softmax", ll), true)},
			part{fmt.Sprintf("%s retrieval > (a) at %d", tag(c), lm), compare(acc(c, lm), acc("a-softmax", lm), false)},
		)
	}
	out = append(out, Claim{
		Claim: "5. Retrofits: replacing softmax with SSMax after (e) or during (f) pretraining recovers part of (b)'s gain",
		Paper: "(e) and (f) improve on (a) at long contexts and in retrieval, less than (b)",
		Measured: fmt.Sprintf("loss at %d: (a) %s, (b) %s, (e) %s, (f) %s; retrieval at %d: (a) %s, (b) %s, (e) %s, (f) %s. %s",
			ll, loss("a-softmax", ll).format(3), loss("b-ssmax", ll).format(3), loss("e-convert-finetune", ll).format(3), loss("f-switch", ll).format(3),
			lm, acc("a-softmax", lm).pct(), acc("b-ssmax", lm).pct(), acc("e-convert-finetune", lm).pct(), acc("f-switch", lm).pct(), describeParts(parts)),
		Agrees: verdict(parts),
	})
	return out
}
