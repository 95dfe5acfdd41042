package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func sized(name string, size int64) WriteTensor {
	return FromBytes(name, U8, []int64{size}, make([]byte, size))
}

func groupNames(groups [][]WriteTensor) [][]string {
	var out [][]string
	for _, g := range groups {
		var names []string
		for _, t := range g {
			names = append(names, t.Name)
		}
		out = append(out, names)
	}
	return out
}

func TestPlanShards(t *testing.T) {
	a, b, c, d := sized("a", 4), sized("b", 4), sized("c", 10), sized("d", 1)
	z := sized("z", 0)
	tests := []struct {
		name    string
		tensors []WriteTensor
		max     int64
		want    [][]string
	}{
		{"none", nil, 8, nil},
		{"fits", []WriteTensor{a, b}, 8, [][]string{{"a", "b"}}},
		{"split", []WriteTensor{a, b, d}, 8, [][]string{{"a", "b"}, {"d"}}},
		{"oversized alone", []WriteTensor{a, c, d}, 8, [][]string{{"a"}, {"c"}, {"d"}}},
		{"oversized first", []WriteTensor{c, a}, 8, [][]string{{"c"}, {"a"}}},
		{"zero-size joins a full shard", []WriteTensor{a, b, z, d}, 8, [][]string{{"a", "b", "z"}, {"d"}}},
		{"order kept", []WriteTensor{d, a, d, a}, 5, [][]string{{"d", "a"}, {"d", "a"}}},
		{"no limit", []WriteTensor{a, c, d}, 0, [][]string{{"a", "c", "d"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := groupNames(PlanShards(tc.tensors, tc.max))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWriteIndexFormat(t *testing.T) {
	tests := []struct {
		name  string
		total int64
		wm    map[string]string
		want  string
	}{
		// Expected outputs produced by Python: json.dumps(index, indent=2,
		// sort_keys=True) + "\n", as the Hugging Face libraries write it.
		{"two shards", 12, map[string]string{
			"c": "model-00002-of-00002.safetensors",
			"a": "model-00001-of-00002.safetensors",
			"b": "model-00001-of-00002.safetensors",
		}, "{\n  \"metadata\": {\n    \"total_size\": 12\n  },\n  \"weight_map\": {\n    \"a\": \"model-00001-of-00002.safetensors\",\n    \"b\": \"model-00001-of-00002.safetensors\",\n    \"c\": \"model-00002-of-00002.safetensors\"\n  }\n}\n"},
		{"empty", 0, map[string]string{}, "{\n  \"metadata\": {\n    \"total_size\": 0\n  },\n  \"weight_map\": {}\n}\n"},
		{"escapes", 5, map[string]string{"é😀\"\\\n\x01\x7f": "x", "B": "y", "a": "z"},
			"{\n  \"metadata\": {\n    \"total_size\": 5\n  },\n  \"weight_map\": {\n    \"B\": \"y\",\n    \"a\": \"z\",\n    \"\\u00e9\\ud83d\\ude00\\\"\\\\\\n\\u0001\\u007f\": \"x\"\n  }\n}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteIndex(dir, tc.total, tc.wm); err != nil {
				t.Fatal(err)
			}
			got := string(mustRead(t, filepath.Join(dir, IndexFileName)))
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			idx, err := ReadIndex(filepath.Join(dir, IndexFileName))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(idx.WeightMap, tc.wm) {
				t.Errorf("read back %v", idx.WeightMap)
			}
			if n, ok := idx.TotalSize(); !ok || n != tc.total {
				t.Errorf("TotalSize = %d, %v", n, ok)
			}
		})
	}
	err := WriteIndex(t.TempDir(), 1, map[string]string{"w": "../x.safetensors"})
	checkErr(t, err, []error{ErrInvalidIndex}, `"w"`)
}

func TestWriteShardedLlama(t *testing.T) {
	src := mustOpen(t, llamaModel)
	ts := fileTensors(t, src)
	var total int64
	for _, w := range ts {
		total += w.Size
	}
	dir := t.TempDir()
	const limit = 150000
	names, err := WriteSharded(dir, src.Metadata(), ts, limit)
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanShards(ts, limit)
	n := len(plan)
	if n < 3 {
		t.Fatalf("only %d shards", n)
	}
	var want []string
	for i := range n {
		want = append(want, ShardName(i+1, n))
	}
	want = append(want, IndexFileName)
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	if ShardName(1, 3) != "model-00001-of-00003.safetensors" {
		t.Errorf("ShardName = %s", ShardName(1, 3))
	}

	// The index: total size, every tensor mapped to the shard holding it.
	var raw struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, IndexFileName)), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Metadata["total_size"] != total || total != 500992 {
		t.Errorf("total_size %d, sum %d", raw.Metadata["total_size"], total)
	}
	idx, err := ReadIndex(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(idx.Files(), want[:n]) {
		t.Errorf("Files() = %v", idx.Files())
	}
	if len(idx.WeightMap) != len(ts) {
		t.Errorf("%d entries in weight_map, want %d", len(idx.WeightMap), len(ts))
	}

	// Every shard is valid, within the limit unless it holds one tensor,
	// carries the metadata, and its tensors have the source's bytes.
	seen := 0
	for i, g := range plan {
		f := mustOpen(t, filepath.Join(dir, want[i]))
		if !reflect.DeepEqual(f.Metadata(), src.Metadata()) {
			t.Errorf("%s: metadata %v", want[i], f.Metadata())
		}
		var size int64
		for j, ti := range f.Tensors() {
			if ti.Name != g[j].Name || idx.WeightMap[ti.Name] != want[i] {
				t.Errorf("%s: tensor %d is %s (index says %s)", want[i], j, ti.Name, idx.WeightMap[ti.Name])
			}
			got, _ := f.Bytes(ti.Name)
			orig, _ := src.Bytes(ti.Name)
			if !bytes.Equal(got, orig) {
				t.Errorf("%s: %s differs", want[i], ti.Name)
			}
			size += ti.Size
			seen++
		}
		if size > limit && len(g) > 1 {
			t.Errorf("%s holds %d bytes", want[i], size)
		}
	}
	if seen != len(ts) {
		t.Errorf("%d tensors in shards, want %d", seen, len(ts))
	}
}

func TestWriteShardedSingle(t *testing.T) {
	src := mustOpen(t, gpt2Model)
	dir := t.TempDir()
	names, err := WriteSharded(dir, src.Metadata(), fileTensors(t, src), 5_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names, []string{SingleFileName}) {
		t.Errorf("names %v", names)
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{SingleFileName}) {
		t.Errorf("directory holds %v", got)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(dir, SingleFileName)), mustRead(t, gpt2Model)) {
		t.Error("single shard differs from the source")
	}
}

func TestWriteShardedErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := WriteSharded(dir, nil, []WriteTensor{sized("a", 1)}, 0)
	checkErr(t, err, []error{ErrInvalidSize})
	_, err = WriteSharded(dir, nil, []WriteTensor{sized("a", 1), sized("b", 1), sized("a", 1)}, 1)
	checkErr(t, err, []error{ErrDuplicateName}, `"a"`)
	// A failure in a later shard removes the shards already written.
	bad := sized("bad", 4)
	bad.Shape = []int64{5}
	_, err = WriteSharded(dir, nil, []WriteTensor{sized("a", 4), sized("b", 4), bad}, 4)
	checkErr(t, err, []error{ErrShapeMismatch}, `"bad"`)
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("files left behind: %v", names)
	}
}

func TestReadIndexErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []error
	}{
		{"not json", `weight_map`, []error{ErrInvalidIndex}},
		{"array", `[]`, []error{ErrInvalidIndex}},
		{"no weight_map", `{"metadata":{"total_size":1}}`, []error{ErrInvalidIndex}},
		{"weight_map not object", `{"weight_map":["a"]}`, []error{ErrInvalidIndex}},
		{"file not string", `{"weight_map":{"a":1}}`, []error{ErrInvalidIndex}},
		{"file with slash", `{"weight_map":{"a":"sub/m.safetensors"}}`, []error{ErrInvalidIndex}},
		{"file with backslash", `{"weight_map":{"a":"..\\m.safetensors"}}`, []error{ErrInvalidIndex}},
		{"file dot-dot", `{"weight_map":{"a":".."}}`, []error{ErrInvalidIndex}},
		{"file empty", `{"weight_map":{"a":""}}`, []error{ErrInvalidIndex}},
		{"duplicate tensor", `{"weight_map":{"a":"x","a":"y"}}`, []error{ErrInvalidIndex, ErrDuplicateName}},
		{"duplicate weight_map", `{"weight_map":{"a":"x"},"weight_map":{}}`, []error{ErrInvalidIndex, ErrDuplicateName}},
		{"total_size string", `{"metadata":{"total_size":"5"},"weight_map":{}}`, []error{ErrInvalidIndex}},
		{"total_size negative", `{"metadata":{"total_size":-5},"weight_map":{}}`, []error{ErrInvalidIndex}},
		{"metadata not object", `{"metadata":3,"weight_map":{}}`, []error{ErrInvalidIndex}},
		{"trailing data", `{"weight_map":{}} {}`, []error{ErrInvalidIndex}},
		{"truncated", `{"weight_map":{"a":"x"`, []error{ErrInvalidIndex}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, IndexFileName, []byte(tc.content))
			_, err := ReadIndex(path)
			checkErr(t, err, tc.want, path)
		})
	}
	idx, err := ReadIndex(writeTemp(t, IndexFileName, []byte(`{"metadata":{"format":"pt"},"other":[1],"weight_map":{"b":"y.st","a":"x.st","c":"y.st"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(idx.Files(), []string{"x.st", "y.st"}) {
		t.Errorf("Files() = %v", idx.Files())
	}
	if _, ok := idx.TotalSize(); ok {
		t.Error("TotalSize present")
	}
	if idx.Metadata["format"] != "pt" {
		t.Errorf("Metadata = %v", idx.Metadata)
	}
	if _, err := ReadIndex(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"5GB", 5_000_000_000, true},
		{"500MB", 500_000_000, true},
		{"2GiB", 2 << 30, true},
		{"100KiB", 102400, true},
		{"123", 123, true},
		{"123B", 123, true},
		{"1.5GB", 1_500_000_000, true},
		{"1.5gib", 3 << 29, true},
		{"10 mb", 10_000_000, true},
		{" 7kb ", 7000, true},
		{"0.1KiB", 102, true}, // 102.4 bytes, truncated
		{"2TB", 2_000_000_000_000, true},
		{"1TiB", 1 << 40, true},
		{"0", 0, true},
		{"8EiB", 0, false},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"10000PB", 0, false},
		{"", 0, false},
		{"GB", 0, false},
		{"-5GB", 0, false},
		{"5 GB GB", 0, false},
		{"5XB", 0, false},
		{"1e9", 0, false},
		{"1.", 0, false},
		{".5GB", 0, false},
		{"1.2.3", 0, false},
		{"5Gb!", 0, false},
		{"0x10", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if !tc.ok {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", tc.in, got)
			} else {
				checkErr(t, err, []error{ErrInvalidSize})
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
