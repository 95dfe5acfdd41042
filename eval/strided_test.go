package eval

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/model"
)

// guideScored runs the loop of Hugging Face's perplexity guide on a
// sequence of n tokens, as the Python code does it (labels masked with
// -100 by slicing, then shifted by one inside the model), and returns the
// window bounds and, per window, the positions of the tokens whose loss
// counts.
func guideScored(n, maxLength, stride int) (bounds [][2]int, scored [][]int) {
	prevEnd := 0
	for begin := 0; begin < n; begin += stride {
		end := min(begin+maxLength, n)
		trgLen := end - prevEnd
		w := end - begin
		labels := make([]int, w) // 1: a label, -100: masked
		for j := range labels {
			labels[j] = 1
		}
		// target_ids[:, :-trg_len] = -100: Python's x[:-k] is x[:len-k],
		// empty when k >= len.
		if cut := w - trgLen; cut > 0 {
			for j := 0; j < cut; j++ {
				labels[j] = -100
			}
		}
		// The model scores shift_labels = labels[1:] against logits[:-1].
		var s []int
		for j := 1; j < w; j++ {
			if labels[j] != -100 {
				s = append(s, begin+j)
			}
		}
		bounds = append(bounds, [2]int{begin, end})
		scored = append(scored, s)
		prevEnd = end
		if end == n {
			break
		}
	}
	return bounds, scored
}

func positions(w Window) []int {
	var out []int
	for p := w.From; p < w.End; p++ {
		out = append(out, p)
	}
	return out
}

// TestWindowsHandComputed: the windows and scored positions of a few cases
// worked out by hand from the guide's code.
func TestWindowsHandComputed(t *testing.T) {
	tests := []struct {
		n, maxLength, stride int
		want                 []Window
	}{
		// Context 8, 20 tokens, stride 4: every token after the first is
		// scored once, each window scoring its last 4 (the first its 7).
		{20, 8, 4, []Window{{0, 8, 1}, {4, 12, 8}, {8, 16, 12}, {12, 20, 16}}},
		// Disjoint windows: each window's first token goes unscored.
		{20, 8, 8, []Window{{0, 8, 1}, {8, 16, 9}, {16, 20, 17}}},
		// A stride beyond the window skips tokens 8, 9 and 18, 19.
		{20, 8, 10, []Window{{0, 8, 1}, {10, 18, 11}}},
		// A last window of one token scores nothing.
		{17, 8, 8, []Window{{0, 8, 1}, {8, 16, 9}, {16, 17, 17}}},
		// Stride 3 does not divide the window: the last window starts at 9
		// and scores from the previous end 14.
		{16, 8, 3, []Window{{0, 8, 1}, {3, 11, 8}, {6, 14, 11}, {9, 16, 14}}},
		// Fits one window.
		{5, 8, 4, []Window{{0, 5, 1}}},
	}
	for _, tc := range tests {
		if got := Windows(tc.n, tc.maxLength, tc.stride); !slices.Equal(got, tc.want) {
			t.Errorf("Windows(%d, %d, %d) = %v, want %v", tc.n, tc.maxLength, tc.stride, got, tc.want)
		}
	}
}

// TestWindowsMatchGuide: Windows gives the guide's windows and scored
// positions for every small case.
func TestWindowsMatchGuide(t *testing.T) {
	for n := 1; n <= 40; n++ {
		for maxLength := 2; maxLength <= 12; maxLength++ {
			for stride := 1; stride <= 14; stride++ {
				bounds, scored := guideScored(n, maxLength, stride)
				got := Windows(n, maxLength, stride)
				if len(got) != len(bounds) {
					t.Fatalf("n %d, length %d, stride %d: %d windows, guide %d", n, maxLength, stride, len(got), len(bounds))
				}
				for k, w := range got {
					if w.Begin != bounds[k][0] || w.End != bounds[k][1] || !slices.Equal(positions(w), scored[k]) {
						t.Fatalf("n %d, length %d, stride %d, window %d: %+v scores %v; guide [%d, %d) scores %v",
							n, maxLength, stride, k, w, positions(w), bounds[k][0], bounds[k][1], scored[k])
					}
				}
			}
		}
	}
}

// tinyGPT2 saves a GPT-2 with 8 learned positions and random weights.
func tinyGPT2(t *testing.T) string {
	t.Helper()
	cfg, err := checkpoint.ParseConfig([]byte(`{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 64,
		"n_positions": 8, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": null, "activation_function": "gelu_new",
		"layer_norm_epsilon": 1e-5, "tie_word_embeddings": true, "torch_dtype": "float32", "eos_token_id": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "gpt2-ctx8")
	if err := m.Save(dir, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// naiveNLL is -log p(ids[p] | ids[begin:p]) from a full forward pass over
// ids[begin:p], softmax computed here.
func naiveNLL(t *testing.T, m *model.Model, ids []int, begin, p int) float64 {
	t.Helper()
	out, err := m.Forward(model.Input{IDs: ids[begin:p]})
	if err != nil {
		t.Fatal(err)
	}
	all := out.Value().(*mat.Dense[float32]).Data().F32()
	row := all[len(all)-m.Spec.Vocab:]
	mx := math.Inf(-1)
	for _, x := range row {
		mx = math.Max(mx, float64(x))
	}
	var z float64
	for _, x := range row {
		z += math.Exp(float64(x) - mx)
	}
	return -(float64(row[ids[p]]) - mx - math.Log(z))
}

// TestScoreStridedHandComputed: a model with 8 learned positions scores 20
// tokens with stride 4 in the guide's 4 windows, every token but the first
// scored from the context its window gives it (checked by a forward pass
// per token), the mean over the 19 tokens; the same through RunScore with
// the defaults window = context and --stride 4.
func TestScoreStridedHandComputed(t *testing.T) {
	dir := tinyGPT2(t)
	m, err := model.Open(dir, "", model.Options{Inference: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 20)
	for i := range ids {
		ids[i] = (i*37 + 5) % 64
	}
	s, err := ScoreStrided(context.Background(), m, ids, 8, 4)
	if err != nil {
		t.Fatal(err)
	}
	// A cancelled context stops it before the next window.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ScoreStrided(cancelled, m, ids, 8, 4); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
	// Hand-computed: window [b, e) scores positions [from, e).
	hand := []struct{ b, e, from int }{{0, 8, 1}, {4, 12, 8}, {8, 16, 12}, {12, 20, 16}}
	want := make([]float64, 19)
	var sum float64
	for _, w := range hand {
		for p := w.from; p < w.e; p++ {
			want[p-1] = naiveNLL(t, m, ids, w.b, p)
			sum += want[p-1]
		}
	}
	if s.Windows != 4 || s.Tokens != 19 || s.Window != 8 || s.Stride != 4 {
		t.Errorf("windows %d, tokens %d, window %d, stride %d; want 4, 19, 8, 4", s.Windows, s.Tokens, s.Window, s.Stride)
	}
	for i := range want {
		if math.Abs(s.NLL[i]-want[i]) > 1e-4 {
			t.Errorf("nll of token %d: %v, forward over its window %v", i+1, s.NLL[i], want[i])
		}
	}
	if mean := sum / 19; math.Abs(s.MeanLoss-mean) > 1e-5 || math.Abs(s.Perplexity-math.Exp(mean)) > 1e-4 {
		t.Errorf("mean %v, want %v", s.MeanLoss, mean)
	}

	tokens := filepath.Join(t.TempDir(), "tokens.txt")
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(strconv.Itoa(id) + "\n")
	}
	os.WriteFile(tokens, []byte(sb.String()), 0o644)
	r, err := RunScore(context.Background(), ScoreOptions{Model: dir, TokensFile: tokens, Stride: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Windows != 4 || r.Tokens != 19 || r.MeanLoss != s.MeanLoss {
		t.Errorf("RunScore: %d windows, %d tokens, mean %v; ScoreStrided %v", r.Windows, r.Tokens, r.MeanLoss, s.MeanLoss)
	}
	// Disjoint windows (the default stride) leave tokens 8 and 16 unscored:
	// null in JSON.
	r, err = RunScore(context.Background(), ScoreOptions{Model: dir, TokensFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	if r.Windows != 3 || r.Tokens != 17 || !math.IsNaN(r.NLL[7]) || !math.IsNaN(r.NLL[15]) || math.IsNaN(r.NLL[8]) {
		t.Errorf("default stride: %d windows, %d tokens, nll %v", r.Windows, r.Tokens, r.NLL)
	}
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), ",null,") || !strings.Contains(string(b), `"windows":3`) {
		t.Errorf("JSON %s, %v", b, err)
	}
	var back Score
	if err := json.Unmarshal(b, &back); err != nil || !math.IsNaN(back.NLL[7]) || back.NLL[8] != r.NLL[8] {
		t.Errorf("JSON round trip: %v, %v", back.NLL, err)
	}
	// Learned positions: no window may exceed them.
	if _, err := RunScore(context.Background(), ScoreOptions{Model: dir, TokensFile: tokens, NoWindow: true}); err == nil || !strings.Contains(err.Error(), "8 learned positions") {
		t.Errorf("--no-window beyond learned positions: %v", err)
	}
	if _, err := RunScore(context.Background(), ScoreOptions{Model: dir, TokensFile: tokens, Window: 9}); err == nil || !strings.Contains(err.Error(), "8 learned positions") {
		t.Errorf("--window 9 beyond learned positions: %v", err)
	}
}

// TestScoreStridedOneWindow: a sequence that fits one window scores as
// ScoreTokens does.
func TestScoreStridedOneWindow(t *testing.T) {
	for _, name := range []string{"llama-tiny", "gpt2-tiny-ssmax"} {
		m, err := model.Open(filepath.Join("../testdata/fixtures", name), "", model.Options{Inference: true})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, 50)
		for i := range ids {
			ids[i] = (i*91 + 3) % m.Spec.Vocab
		}
		want, err := ScoreTokens(m, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, stride := range []int{1, 64, 128} {
			got, err := ScoreStrided(context.Background(), m, ids, m.Spec.Context, stride)
			if err != nil {
				t.Fatal(err)
			}
			if got.Windows != 1 || got.Tokens != want.Tokens || got.MeanLoss != want.MeanLoss || !slices.Equal(got.NLL, want.NLL) {
				t.Errorf("%s stride %d: %d windows, %d tokens, mean %v; ScoreTokens %d tokens, mean %v", name, stride, got.Windows, got.Tokens, got.MeanLoss, want.Tokens, want.MeanLoss)
			}
		}
	}
}
