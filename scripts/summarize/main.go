// Command summarize reads the runs and evaluations of a reproduction
// (scripts/reproduce.sh) over several seeds and writes summary.json,
// report.md and plots showing the spread over seeds. A claim of the paper
// is called supported only where the difference exceeds the seed spread.
//
//	go run ./scripts/summarize --out DIR --seeds 1,2,3 --train-len 256 [--elapsed S] [--quick]
//
// It expects DIR/runs/seed<S>/<config>/metrics.jsonl and
// DIR/eval/seed<S>/{length,retrieval}/*.json (and, when present,
// length-theta1, retrieval-theta1 and inits/).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/retrieval"
)

// configs are the paper's six configurations, in order.
var configs = []string{"a-softmax", "b-ssmax", "c-fixed", "d-bias", "e-convert-finetune", "f-switch"}

// Summary is summary.json.
type Summary struct {
	TrainLen int                `json:"train_len"`
	Seeds    []int              `json:"seeds"`
	Mode     string             `json:"mode"`
	Configs  map[string]*Config `json:"configs"`
	Claims   []Claim            `json:"claims"`
	// Rule says when a difference counts.
	Rule string `json:"rule"`
	// Inits compares the conversion initialisations (configuration (e)'s
	// source checkpoint), per init: zero-shot and after an s-only
	// fine-tune, validation loss per seed.
	Inits map[string]*InitResult `json:"inits,omitempty"`
	// Task is the retrieval task the evaluations asked (from retrieval.json).
	Task        *retrieval.Task `json:"retrieval_task,omitempty"`
	WallSeconds float64         `json:"wall_seconds,omitempty"`
}

// Config is one configuration's measurements, one value per seed (in the
// order of Summary.Seeds; null where missing).
type Config struct {
	ValLoss vals `json:"val_loss"`
	// Retrieval is the key-retrieval exact-match accuracy per prompt length
	// (RoPE theta x50), over every depth.
	Retrieval map[string]vals `json:"retrieval"`
	// LengthLoss is the loss at context sizes L/2+1..L of samples of each
	// length L (the last power-of-two bucket; RoPE theta x50).
	LengthLoss map[string]vals `json:"length_loss"`
	// RetrievalAnswerLoss is the loss on the value tokens per length
	// (nats per digit; chance ln 10 = 2.303).
	RetrievalAnswerLoss map[string]vals `json:"retrieval_answer_loss"`
	// KeyAttention is the attention of the answering query's most
	// retrieving head on the target record, per length.
	KeyAttention map[string]vals `json:"key_attention"`
	// TrainAnswerLoss is the final retrieval answer loss at the training
	// length logged by training.
	TrainAnswerLoss vals `json:"train_answer_loss"`
	// Theta1 holds the same evaluations with RoPE theta as trained, when
	// run.
	RetrievalTheta1  map[string]vals `json:"retrieval_theta1,omitempty"`
	LengthLossTheta1 map[string]vals `json:"length_loss_theta1,omitempty"`
	// curves are the validation loss per step per seed (for the plot).
	curves map[int]vals
}

// chance is the exact-match accuracy of guessing the value's digits at
// random (0 when the task is unknown).
func (s *Summary) chance() float64 {
	if s.Task == nil || s.Task.ValueLen < 1 {
		return 0
	}
	return math.Pow(10, -float64(s.Task.ValueLen))
}

// taskText describes the retrieval task for the report.
func (s *Summary) taskText() string {
	if s.Task == nil {
		return "the value"
	}
	if s.Task.Passkey {
		return fmt.Sprintf("the %d-digit passkey (one record among filler words; chance %.0f%%)", s.Task.ValueLen, 100*s.chance())
	}
	return fmt.Sprintf("the %d-digit value (chance %.2g%%)", s.Task.ValueLen, 100*s.chance())
}

// Claim is one of the paper's claims and what was measured.
type Claim struct {
	Claim    string `json:"claim"`
	Paper    string `json:"paper"`
	Measured string `json:"measured"`
	Agrees   *bool  `json:"agrees"`
}

// InitResult is one initialisation of the conversion comparison.
type InitResult struct {
	Variant   string `json:"variant"`
	ZeroShot  vals   `json:"zero_shot_val_loss"`
	SOnly     vals   `json:"s_only_finetune_val_loss"`
	CalibLoss vals   `json:"calibration_loss,omitempty"`
}

func main() {
	out := flag.String("out", "", "reproduction directory")
	seedList := flag.String("seeds", "1", "seeds, comma-separated")
	trainLen := flag.Int("train-len", 256, "training length L")
	elapsed := flag.Float64("elapsed", 0, "wall time of the reproduction in seconds")
	quick := flag.Bool("quick", false, "quick mode (smoke test)")
	header := flag.String("header", "", "file whose Markdown starts report.md (setup, machine)")
	commands := flag.String("commands", "", "commands.log to include in report.md")
	flag.Parse()
	if *out == "" {
		fail(fmt.Errorf("--out is required"))
	}
	var seeds []int
	for _, f := range strings.Split(*seedList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fail(fmt.Errorf("--seeds: %q", f))
		}
		seeds = append(seeds, n)
	}
	s, err := collect(*out, seeds, *trainLen)
	if err != nil {
		fail(err)
	}
	s.Mode = "full"
	if *quick {
		s.Mode = "quick"
	}
	s.WallSeconds = *elapsed
	s.Claims = claims(s)
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(*out, "summary.json"), append(js, '\n')); err != nil {
		fail(err)
	}
	if err := plots(*out, s); err != nil {
		fail(err)
	}
	rep, err := report(s, *header, *commands)
	if err != nil {
		fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(*out, "report.md"), rep); err != nil {
		fail(err)
	}
	fmt.Printf("wrote %s, %s\n", filepath.Join(*out, "summary.json"), filepath.Join(*out, "report.md"))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "summarize:", err)
	os.Exit(1)
}

// vals are per-seed values; a missing one (NaN) is written as null.
type vals []float64

// MarshalJSON writes the values, null for NaN.
func (v vals) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b.WriteString("null")
		} else {
			b.WriteString(strconv.FormatFloat(x, 'g', 6, 64))
		}
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// collect reads every seed's runs and evaluations.
func collect(out string, seeds []int, L int) (*Summary, error) {
	s := &Summary{TrainLen: L, Seeds: seeds, Configs: map[string]*Config{}, Inits: map[string]*InitResult{},
		Rule: "a difference counts (supported or contradicted) only when the means differ by more than the sum of the two seed standard deviations, so the mean ± sd bands do not overlap; otherwise it is within the seed spread. A claim agrees (true) when every comparison it makes is supported, disagrees (false) when any is contradicted, and is null otherwise."}
	for _, c := range configs {
		s.Configs[c] = &Config{Retrieval: map[string]vals{}, LengthLoss: map[string]vals{}, RetrievalAnswerLoss: map[string]vals{},
			KeyAttention: map[string]vals{}, curves: map[int]vals{}}
	}
	n := len(seeds)
	put := func(m map[string]vals, key string, i int, v float64) {
		if m[key] == nil {
			m[key] = nanSlice(n)
		}
		m[key][i] = v
	}
	for i, seed := range seeds {
		runs := filepath.Join(out, "runs", fmt.Sprintf("seed%d", seed))
		ev := filepath.Join(out, "eval", fmt.Sprintf("seed%d", seed))
		for _, c := range configs {
			cf := s.Configs[c]
			if cf.ValLoss == nil {
				cf.ValLoss, cf.TrainAnswerLoss = nanSlice(n), nanSlice(n)
			}
			val, ans, curve, err := readMetrics(filepath.Join(runs, c, "metrics.jsonl"))
			if err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			cf.ValLoss[i], cf.TrainAnswerLoss[i] = val, ans
			for step, v := range curve {
				if cf.curves[step] == nil {
					cf.curves[step] = nanSlice(n)
				}
				cf.curves[step][i] = v
			}
		}
		for _, kind := range []struct {
			dir   string
			theta bool
		}{{"length", false}, {"length-theta1", true}} {
			var rep struct{ Models []*eval.LengthResult }
			if err := readJSON(filepath.Join(ev, kind.dir, "length.json"), &rep); err != nil {
				if os.IsNotExist(err) {
					continue
				}
				return nil, err
			}
			for _, r := range rep.Models {
				cf := s.Configs[configOf(r.Path)]
				if cf == nil {
					continue
				}
				m := cf.LengthLoss
				if kind.theta {
					if cf.LengthLossTheta1 == nil {
						cf.LengthLossTheta1 = map[string]vals{}
					}
					m = cf.LengthLossTheta1
				}
				for _, p := range r.Points {
					if p.LengthStats == nil || len(p.Buckets) == 0 {
						continue
					}
					put(m, strconv.Itoa(p.Length), i, p.Buckets[len(p.Buckets)-1].MeanLoss)
				}
			}
		}
		for _, kind := range []struct {
			dir   string
			theta bool
		}{{"retrieval", false}, {"retrieval-theta1", true}} {
			var rep struct{ Models []*eval.RetrievalResult }
			if err := readJSON(filepath.Join(ev, kind.dir, "retrieval.json"), &rep); err != nil {
				if os.IsNotExist(err) {
					continue
				}
				return nil, err
			}
			for _, r := range rep.Models {
				if s.Task == nil {
					t := r.Task
					s.Task = &t
				}
				if s.Task == nil {
					t := r.Task
					s.Task = &t
				}
				cf := s.Configs[configOf(r.Path)]
				if cf == nil {
					continue
				}
				for _, row := range r.ByLength {
					if row.NA != "" {
						continue
					}
					key := strconv.Itoa(row.Length)
					if kind.theta {
						if cf.RetrievalTheta1 == nil {
							cf.RetrievalTheta1 = map[string]vals{}
						}
						put(cf.RetrievalTheta1, key, i, row.Accuracy.Accuracy)
						continue
					}
					put(cf.Retrieval, key, i, row.Accuracy.Accuracy)
					put(cf.RetrievalAnswerLoss, key, i, row.AnswerLoss)
					if row.Attention != nil {
						put(cf.KeyAttention, key, i, row.Attention.Max)
					}
				}
			}
		}
		if err := readInits(filepath.Join(out, "inits", fmt.Sprintf("seed%d", seed)), s, i, n); err != nil {
			return nil, err
		}
	}
	if len(s.Inits) == 0 {
		s.Inits = nil
	}
	return s, nil
}

func nanSlice(n int) vals {
	out := make(vals, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}

// configOf names the configuration of a model path (.../<config>/final).
func configOf(path string) string {
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		for _, c := range configs {
			if part == c {
				return c
			}
		}
	}
	return ""
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readMetrics returns a run's last validation loss, its last retrieval
// answer loss and the validation loss per step.
func readMetrics(path string) (val, ans float64, curve map[int]float64, err error) {
	val, ans, curve = math.NaN(), math.NaN(), map[int]float64{}
	b, err := os.ReadFile(path)
	if err != nil {
		return val, ans, curve, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var m struct {
			Step          int      `json:"step"`
			ValLoss       *float64 `json:"val_loss"`
			RetrievalLoss *float64 `json:"retrieval_answer_loss"`
		}
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m.ValLoss != nil {
			val = *m.ValLoss
			curve[m.Step] = val
		}
		if m.RetrievalLoss != nil {
			ans = *m.RetrievalLoss
		}
	}
	return val, ans, curve, nil
}

// readInits reads the initialisation comparison of one seed:
// DIR/<init>/zero-shot.txt and DIR/<init>/finetune.txt hold the finetune
// command's "validation loss A -> B" line (A zero-shot, B after the s-only
// fine-tune); DIR/<init>/calibration.txt, for calibrate, convert's
// "calibrated ... calibrated X" line.
func readInits(dir string, s *Summary, i, n int) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "finetune.txt"))
		if err != nil {
			continue
		}
		var before, after float64
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "validation loss %f -> %f", &before, &after); err == nil {
				found = true
			}
		}
		if !found {
			continue
		}
		name, variant, _ := strings.Cut(e.Name(), "-")
		r := s.Inits[name]
		if r == nil {
			r = &InitResult{Variant: variant, ZeroShot: nanSlice(n), SOnly: nanSlice(n)}
			s.Inits[name] = r
		}
		r.ZeroShot[i], r.SOnly[i] = before, after
		if cb, err := os.ReadFile(filepath.Join(dir, e.Name(), "calibration.txt")); err == nil {
			var sm, m, c float64
			for _, line := range strings.Split(string(cb), "\n") {
				if k := strings.Index(line, "loss softmax"); k >= 0 {
					if _, err := fmt.Sscanf(line[k:], "loss softmax %f, match %f, calibrated %f", &sm, &m, &c); err == nil {
						if r.CalibLoss == nil {
							r.CalibLoss = nanSlice(n)
						}
						r.CalibLoss[i] = c
					}
				}
			}
		}
	}
	return nil
}

// lengthKeys returns the keys of a per-length map sorted by length.
func lengthKeys(m map[string]vals) []int {
	var out []int
	for k := range m {
		if n, err := strconv.Atoi(k); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// at is the stat of a per-length map at length L.
func at(m map[string]vals, L int) stat {
	if m == nil {
		return stat{Mean: math.NaN(), SD: math.NaN()}
	}
	return summarise(m[strconv.Itoa(L)])
}
