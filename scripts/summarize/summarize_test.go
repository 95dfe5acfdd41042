package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/retrieval"
)

func TestCompare(t *testing.T) {
	a := summarise([]float64{1.0, 1.1, 0.9})   // 1.0 ± 0.1
	b := summarise([]float64{0.7, 0.8, 0.75})  // 0.75 ± 0.05
	c := summarise([]float64{0.95, 1.0, 0.85}) // overlaps a
	if math.Abs(a.Mean-1) > 1e-12 || math.Abs(a.SD-0.1) > 1e-12 {
		t.Fatalf("stat %+v", a)
	}
	for _, x := range []struct {
		got, want string
	}{
		{compare(b, a, true), supported},
		{compare(b, a, false), contradicted},
		{compare(c, a, true), withinSpread},
		{compare(summarise([]float64{0.5}), summarise([]float64{1}), true), withinSpread},
		{compare(summarise([]float64{math.NaN()}), a, true), missing},
		{closeTo(c, a), supported},
		{closeTo(b, a), contradicted},
	} {
		if x.got != x.want {
			t.Errorf("got %q, want %q", x.got, x.want)
		}
	}
	yes, no := true, false
	for _, x := range []struct {
		parts []part
		want  *bool
	}{
		{[]part{{"x", supported}, {"y", supported}}, &yes},
		{[]part{{"x", supported}, {"y", withinSpread}}, nil},
		{[]part{{"x", supported}, {"y", contradicted}}, &no},
		{nil, nil},
	} {
		got := verdict(x.parts)
		if (got == nil) != (x.want == nil) || (got != nil && *got != *x.want) {
			t.Errorf("verdict(%v) = %v", x.parts, got)
		}
	}
}

// writeFake writes a reproduction directory in which SSMax (b) clearly
// retrieves better and has lower long-context loss than softmax (a), with
// spread over three seeds, and (c) equals (a) within the spread.
func writeFake(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	seeds := []int{1, 2, 3}
	lengths := []int{256, 1024, 2048, 4096}
	for k, seed := range seeds {
		jitter := 0.01 * float64(k-1)
		var lengthModels []*eval.LengthResult
		var retModels []*eval.RetrievalResult
		for _, c := range configs {
			run := filepath.Join(dir, "runs", fmt.Sprintf("seed%d", seed), c)
			if err := os.MkdirAll(run, 0o777); err != nil {
				t.Fatal(err)
			}
			val := 2.0 + jitter
			if c == "b-ssmax" || c == "d-bias" {
				val -= 0.2
			}
			lines := fmt.Sprintf(`{"step":100,"loss":3,"val_loss":%g}`+"\n"+`{"step":200,"loss":2,"val_loss":%g,"retrieval_answer_loss":0.5}`+"\n", val+1, val)
			if err := os.WriteFile(filepath.Join(run, "metrics.jsonl"), []byte(lines), 0o644); err != nil {
				t.Fatal(err)
			}
			good := c == "b-ssmax"
			lr := &eval.LengthResult{Model: c + "/final", Path: filepath.Join(run, "final")}
			rr := &eval.RetrievalResult{Model: c + "/final", Path: filepath.Join(run, "final")}
			for _, L := range lengths {
				loss := 2.0 + float64(L)/4096 + jitter
				acc := 1 - float64(L)/4096 + jitter
				if good {
					loss, acc = 2.0+jitter, 0.9+jitter
				}
				lr.Points = append(lr.Points, eval.LengthPoint{Length: L, LengthStats: &eval.LengthStats{MeanLoss: loss,
					Buckets: []eval.BucketLoss{{Bucket: eval.Bucket{Lo: L/2 + 1, Hi: L}, MeanLoss: loss}}}})
				row := eval.RetrievalLength{Length: L, Attention: &eval.KeyAttention{Max: acc / 2}}
				row.Accuracy.Accuracy = acc
				rr.ByLength = append(rr.ByLength, row)
			}
			lengthModels = append(lengthModels, lr)
			retModels = append(retModels, rr)
		}
		ev := filepath.Join(dir, "eval", fmt.Sprintf("seed%d", seed))
		write := func(sub, name string, v any) {
			os.MkdirAll(filepath.Join(ev, sub), 0o777)
			b, _ := json.Marshal(v)
			if err := os.WriteFile(filepath.Join(ev, sub, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("length", "length.json", map[string]any{"eval": "length", "models": lengthModels})
		write("retrieval", "retrieval.json", map[string]any{"eval": "retrieval", "models": retModels})
		in := filepath.Join(dir, "inits", fmt.Sprintf("seed%d", seed), "calibrate-ssmax")
		os.MkdirAll(in, 0o777)
		os.WriteFile(filepath.Join(in, "finetune.txt"), []byte(fmt.Sprintf("trained 4 steps\nvalidation loss %g -> %g\n", 2.5+jitter, 2.4+jitter)), 0o644)
		os.WriteFile(filepath.Join(in, "calibration.txt"), []byte("calibrated s per head on 1024 tokens in 1.0 s: loss softmax 2.1000, match 2.2000, calibrated 2.0500\n"), 0o644)
	}
	return dir
}

func TestSummary(t *testing.T) {
	dir := writeFake(t)
	s, err := collect(dir, []int{1, 2, 3}, 256)
	if err != nil {
		t.Fatal(err)
	}
	s.Claims = claims(s)
	b := s.Configs["b-ssmax"]
	if len(b.ValLoss) != 3 || math.Abs(b.ValLoss[0]-1.79) > 1e-9 || len(b.Retrieval["4096"]) != 3 || len(b.LengthLoss) != 4 {
		t.Fatalf("b: %+v", b)
	}
	if r := s.Inits["calibrate"]; r == nil || r.Variant != "ssmax" || math.Abs(r.SOnly[2]-2.41) > 1e-9 || r.CalibLoss[0] != 2.05 {
		t.Fatalf("inits: %+v", s.Inits)
	}
	// Retrieval: (a) fails at 2048 (nearest 10x 256), (b) stays: supported
	// parts; (c), (d) below (b) supported; (e), (f) not above (a): null.
	c3 := s.Claims[2]
	for _, want := range []string{"(a) at 2048 < (a) at 256 (fails beyond short contexts): supported", "(b) > (a) at 2048: supported", "(e) > (a) at 2048: within the seed spread"} {
		if !strings.Contains(c3.Measured, want) {
			t.Errorf("claim 3 lacks %q:\n%s", want, c3.Measured)
		}
	}
	if c3.Agrees != nil {
		t.Errorf("claim 3: agrees %v, want null (retrofits within the spread)", *c3.Agrees)
	}
	if strings.Contains(c3.Measured, "not testable") {
		t.Errorf("claim 3 called untestable although (b) retrieves:\n%s", c3.Measured)
	}
	// Models that do not retrieve at the training length: claim 3 is not
	// testable, whatever the differences beyond it.
	untrained := *s
	untrained.Configs = map[string]*Config{}
	for name, c := range s.Configs {
		cc := *c
		cc.Retrieval = map[string]vals{}
		for L, v := range c.Retrieval {
			cc.Retrieval[L] = v
		}
		cc.Retrieval["256"] = vals{0, 0.05, 0}
		untrained.Configs[name] = &cc
	}
	if u := claims(&untrained)[2]; u.Agrees != nil || !strings.HasPrefix(u.Measured, "not testable here: no configuration retrieves at the training length 256 (best mean accuracy 2%") {
		t.Errorf("claim 3 without retrieval at the training length: %+v", u)
	}
	untrained.Claims = claims(&untrained)
	if rep, err := report(&untrained, "", ""); err != nil || !bytes.Contains(rep, []byte("| null (not testable) | not testable here:")) {
		t.Errorf("report of an untestable claim 3 (%v):\n%s", err, rep)
	}
	// Training loss: (c) equals (a): null; claim 4: (a) spreads away and
	// (b) stays concentrated: true.
	if s.Claims[0].Agrees != nil || s.Claims[3].Agrees == nil || !*s.Claims[3].Agrees {
		t.Errorf("claims 1 and 4: %+v %+v", s.Claims[0], s.Claims[3])
	}
	// The JSON has the shape, with null for nothing measured.
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var shape struct {
		TrainLen int   `json:"train_len"`
		Seeds    []int `json:"seeds"`
		Configs  map[string]struct {
			ValLoss    []*float64            `json:"val_loss"`
			Retrieval  map[string][]*float64 `json:"retrieval"`
			LengthLoss map[string][]*float64 `json:"length_loss"`
		} `json:"configs"`
		Claims []struct {
			Claim, Paper, Measured string
			Agrees                 *bool
		} `json:"claims"`
	}
	if err := json.Unmarshal(js, &shape); err != nil {
		t.Fatal(err)
	}
	if shape.TrainLen != 256 || len(shape.Configs) != 6 || len(shape.Claims) != 5 || len(shape.Configs["f-switch"].LengthLoss["4096"]) != 3 {
		t.Errorf("summary.json shape: %s", js)
	}
	for _, c := range shape.Claims {
		if c.Claim == "" || c.Paper == "" || c.Measured == "" {
			t.Errorf("claim %+v", c)
		}
	}
	if err := plots(dir, s); err != nil {
		t.Fatal(err)
	}
	rep, err := report(s, "", "")
	if err != nil || !strings.Contains(string(rep), "| b-ssmax | 90% ± 1 |") {
		t.Errorf("report: %v\n%s", err, rep)
	}
	// A missing seed's values are null.
	s2, err := collect(dir, []int{1, 9}, 256)
	if err != nil {
		t.Fatal(err)
	}
	js, _ = json.Marshal(s2.Configs["a-softmax"].ValLoss)
	if string(js) != "[1.99,null]" {
		t.Errorf("missing seed: %s", js)
	}
}

// TestMinRetrieval checks that the floor below which retrieval is not
// testable stays above chance for short values.
func TestMinRetrieval(t *testing.T) {
	for _, c := range []struct {
		task *retrieval.Task
		want float64
	}{
		{nil, 0.10},
		{&retrieval.Task{ValueLen: 4}, 0.10},
		{&retrieval.Task{ValueLen: 1, Passkey: true}, 0.30},
		{&retrieval.Task{ValueLen: 2}, 0.10},
	} {
		if got := minRetrieval(&Summary{Task: c.task}); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("task %+v: floor %v, want %v", c.task, got, c.want)
		}
	}
}

// TestPairedDiff checks differences paired by seed: a shift common to all
// configurations cancels, missing seeds are left out.
func TestPairedDiff(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		x, y          vals
		mean, sd      float64
		n, below, abv int
	}{
		{vals{1.0, 2.0, 3.0}, vals{1.1, 2.1, 3.1}, -0.1, 0, 3, 3, 0},
		{vals{1, 5, nan}, vals{2, 3, 1}, 0.5, math.Sqrt(4.5), 2, 1, 1},
		{vals{nan}, vals{1}, nan, nan, 0, 0, 0},
	} {
		d, below, above := pairedDiff(c.x, c.y)
		if d.N != c.n || below != c.below || above != c.abv {
			t.Errorf("%v - %v: n %d, below %d, above %d", c.x, c.y, d.N, below, above)
		}
		if c.n > 0 && (math.Abs(d.Mean-c.mean) > 1e-12 || math.Abs(d.SD-c.sd) > 1e-12) {
			t.Errorf("%v - %v: %v ± %v, want %v ± %v", c.x, c.y, d.Mean, d.SD, c.mean, c.sd)
		}
	}
	if got := formatPaired(vals{0.5, 0.7}, vals{0.25, 0.5}, 100, 0, "%", true); got != "+22% ± 4 (2/2 above)" {
		t.Errorf("formatPaired: %q", got)
	}
}
