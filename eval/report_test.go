package eval

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestModelLabels(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"/ckpt/gpt2"}, []string{"gpt2"}},
		{[]string{"/tmp/base/final", "/tmp/ssmax/final"}, []string{"base/final", "ssmax/final"}},
		{[]string{"/a/run/model", "/b/run/model", "/c/other"}, []string{"a/run/model", "b/run/model", "other"}},
		{[]string{"run/step_000200/", "gpt2"}, []string{"run/step_000200", "gpt2"}},
		{[]string{"same", "same"}, []string{"same", "same"}},
	} {
		if got := ModelLabels(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ModelLabels(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func sampleLength() []*LengthResult {
	return []*LengthResult{
		{Model: "base/final", Samples: 2, Points: []LengthPoint{
			{Length: 100, LengthStats: &LengthStats{Source: SourceDocuments, Offsets: []int{0, 500}, MeanLoss: 2.5, Perplexity: 12.18,
				Buckets: []BucketLoss{{Bucket{1, 64}, 2.75, 128}, {Bucket{65, 100}, 2.0555, 72}}}},
			{Length: 300, NA: "beyond the model's 128 learned positions"},
		}},
		{Model: "rope", Samples: 2, Points: []LengthPoint{
			{Length: 300, LengthStats: &LengthStats{Source: SourceConcat, Offsets: []int{0}, MeanLoss: 2.25,
				Buckets: []BucketLoss{{Bucket{1, 64}, 3, 64}, {Bucket{65, 128}, 2.5, 64}, {Bucket{129, 256}, 2, 128}, {Bucket{257, 300}, 1.9, 44}}}},
		}},
	}
}

// TestWriteLength: the table has the buckets of the longest length as
// columns, n/a rows with their reason; the CSV has an "all" row per length
// and a row per bucket.
func TestWriteLength(t *testing.T) {
	var b bytes.Buffer
	if err := WriteLengthTable(&b, sampleLength()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"1-64", "65-128", "129-256", "257-512", "2.5000", "2.0555", "n/a: base/final: beyond the model's 128 learned positions", "documents", "concat"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Count(lines[2], "n/a") != 5 {
		t.Errorf("table:\n%s", out)
	}
	b.Reset()
	if err := WriteLengthCSV(&b, sampleLength()); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// header + (all + 2 buckets) + n/a + (all + 4 buckets)
	if len(rows) != 1+3+1+5 {
		t.Fatalf("%d CSV rows:\n%v", len(rows), rows)
	}
	if got := rows[1]; got[2] != "all" || got[5] != "2.5" || got[6] != "200" {
		t.Errorf("overall row %v", got)
	}
	if got := rows[4]; got[1] != "300" || got[5] != "" || !strings.Contains(got[9], "learned") {
		t.Errorf("n/a row %v", got)
	}
}

// TestSave: SaveLength, SaveNIAH and SaveAttention write valid JSON, CSV
// and PNG files and leave no temporary file behind.
func TestSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	niah := []*NIAHResult{{Model: "a", Lengths: []int{64, 128}, Depths: []float64{0, 1}, Trials: 2, Accuracy: 0.5,
		Cells: [][]NIAHCell{{{Length: 64, Depth: 0, Correct: 2, Trials: 2, Accuracy: 1}, {Length: 64, Depth: 1, Trials: 2}},
			{{Length: 128, Depth: 0, NA: "beyond"}, {Length: 128, Depth: 1, NA: "beyond"}}}}}
	att := []*AttentionResult{
		{Model: "soft", Length: 64, Modes: []string{"softmax", "softmax"}, Mass: [][]float64{{.1, .2}, {.3, .05}}, Uniform: .1, Trials: 1},
		{Model: "ssmax", Length: 64, Modes: []string{"ssmax", "ssmax"}, Mass: [][]float64{{.4, .2}, {.6, .05}}, Uniform: .1, Trials: 1},
	}
	if err := SaveLength(dir, sampleLength()); err != nil {
		t.Fatal(err)
	}
	if err := SaveNIAH(dir, niah); err != nil {
		t.Fatal(err)
	}
	if err := SaveAttention(dir, att); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"length", "niah", "attention"} {
		raw, err := os.ReadFile(filepath.Join(dir, kind+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Eval   string            `json:"eval"`
			Models []json.RawMessage `json:"models"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil || doc.Eval != kind || len(doc.Models) == 0 {
			t.Errorf("%s.json: %v %+v", kind, err, doc)
		}
		f, err := os.Open(filepath.Join(dir, kind+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 400 || img.Bounds().Dy() < 300 {
			t.Errorf("%s.png: %v", kind, err)
		}
		if _, err := os.Stat(filepath.Join(dir, kind+".csv")); err != nil {
			t.Error(err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "length.json"))
	if !strings.Contains(string(raw), `"na": "beyond the model's 128 learned positions"`) || strings.Contains(string(raw), "null") {
		t.Errorf("length.json n/a point:\n%s", raw)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 9 {
		t.Errorf("%d files in the output directory, want 9", len(entries))
	}
	var b bytes.Buffer
	if err := WriteNIAHTable(&b, niah); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "100%") || !strings.Contains(out, "n/a: beyond") || !strings.Contains(out, "a: accuracy 50%") {
		t.Errorf("niah table:\n%s", out)
	}
	b.Reset()
	if err := WriteAttentionTable(&b, att); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "soft (softmax)") || !strings.Contains(out, "ssmax (ssmax)") || !strings.Contains(out, "0.6000") {
		t.Errorf("attention table:\n%s", out)
	}
}
