package safetensors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ssmax/ssmax/internal/atomicfile"
)

// File names of a Hugging Face checkpoint.
const (
	// SingleFileName is the weight file of an unsharded checkpoint.
	SingleFileName = "model.safetensors"
	// IndexFileName is the index of a sharded checkpoint.
	IndexFileName = "model.safetensors.index.json"
)

// ShardName returns the name of shard i (1-based) of n:
// model-00001-of-00003.safetensors.
func ShardName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// Index is a parsed model.safetensors.index.json.
type Index struct {
	// Metadata is the "metadata" object (nil when absent), decoded with
	// encoding/json: numbers are float64.
	Metadata map[string]any
	// WeightMap maps each tensor name to the shard file (a base name) that
	// holds it.
	WeightMap map[string]string
}

// ReadIndex reads and validates a model.safetensors.index.json: a JSON
// object with a "weight_map" object of tensor name to shard file name (a
// plain file name: no path separator, not "." or ".."), each tensor once, and
// an optional "metadata" object whose "total_size", if present, is a
// non-negative number. Other top-level keys are ignored. Errors wrap
// ErrInvalidIndex (and ErrDuplicateName for a repeated key).
func ReadIndex(path string) (*Index, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	idx, err := parseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return idx, nil
}

func parseIndex(data []byte) (*Index, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, ErrInvalidUTF8)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w (not a JSON object)", ErrInvalidIndex)
	}
	idx := &Index{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w (%v)", ErrInvalidIndex, err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("%w: %w (top-level key %s occurs twice)", ErrInvalidIndex, ErrDuplicateName, quote(key))
		}
		seen[key] = true
		switch key {
		case "metadata":
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				return nil, fmt.Errorf("%w (metadata: %v)", ErrInvalidIndex, err)
			}
			if m == nil {
				return nil, fmt.Errorf("%w (metadata is not an object)", ErrInvalidIndex)
			}
			idx.Metadata = m
		case "weight_map":
			wm, err := decodeWeightMap(dec)
			if err != nil {
				return nil, err
			}
			idx.WeightMap = wm
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("%w (%v)", ErrInvalidIndex, err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrInvalidIndex, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w (data after the JSON object)", ErrInvalidIndex)
	}
	if idx.WeightMap == nil {
		return nil, fmt.Errorf("%w (no weight_map)", ErrInvalidIndex)
	}
	if ts, ok := idx.Metadata["total_size"]; ok {
		v, isNum := ts.(float64)
		if !isNum || v < 0 {
			return nil, fmt.Errorf("%w (metadata.total_size is %v, not a non-negative number)", ErrInvalidIndex, ts)
		}
	}
	return idx, nil
}

func decodeWeightMap(dec *json.Decoder) (map[string]string, error) {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("%w (weight_map is not an object)", ErrInvalidIndex)
	}
	wm := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w (weight_map: %v)", ErrInvalidIndex, err)
		}
		name, _ := tok.(string)
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w (weight_map: %v)", ErrInvalidIndex, err)
		}
		file, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%w (weight_map: tensor %s: file is not a string)", ErrInvalidIndex, quote(name))
		}
		if _, dup := wm[name]; dup {
			return nil, fmt.Errorf("%w: tensor %s: %w (listed twice in weight_map)", ErrInvalidIndex, quote(name), ErrDuplicateName)
		}
		if file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`) || strings.ContainsRune(file, 0) {
			return nil, fmt.Errorf("%w (weight_map: tensor %s: file %s is not a plain file name)", ErrInvalidIndex, quote(name), quote(file))
		}
		wm[name] = file
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w (weight_map: %v)", ErrInvalidIndex, err)
	}
	return wm, nil
}

// Files returns the distinct shard file names of the index, sorted.
func (x *Index) Files() []string {
	var files []string
	for _, f := range x.WeightMap {
		files = append(files, f)
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// TotalSize returns metadata.total_size when present.
func (x *Index) TotalSize() (int64, bool) {
	v, ok := x.Metadata["total_size"].(float64)
	if !ok {
		return 0, false
	}
	return int64(v), true
}

// ParseSize parses a size such as "5GB" (5*10^9 bytes), "500MB", "2GiB"
// (2*2^30), "100KiB", "1.5GB" or "123" (bytes). Units B, KB, MB, GB, TB, PB
// (powers of 1000) and KiB, MiB, GiB, TiB, PiB (powers of 1024) are
// case-insensitive and may follow the number after spaces. A fractional
// byte count is truncated. Errors wrap ErrInvalidSize.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if !validDecimal(num) {
		return 0, fmt.Errorf("%w %q (want a number with an optional unit, like 5GB or 2GiB)", ErrInvalidSize, s)
	}
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, fmt.Errorf("%w %q (unknown unit %q; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", ErrInvalidSize, s, t[i:])
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrInvalidSize, s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() {
		return 0, fmt.Errorf("%w %q (more than %d bytes)", ErrInvalidSize, s, int64(math.MaxInt64))
	}
	return q.Int64(), nil
}

// sizeUnit returns the multiplier of a lower-case unit.
func sizeUnit(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	case "pb":
		return 1e15, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "tib":
		return 1 << 40, true
	case "pib":
		return 1 << 50, true
	}
	return 0, false
}

// validDecimal reports whether s is digits with an optional fraction
// ("12", "1.5"), nothing else.
func validDecimal(s string) bool {
	whole, frac, hasDot := strings.Cut(s, ".")
	digits := func(x string) bool {
		if x == "" {
			return false
		}
		for _, c := range x {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return digits(whole) && (!hasDot || digits(frac))
}

// PlanShards splits tensors, in order, greedily into groups whose data size
// stays at or under maxShardSize: a tensor that would push the current group
// past the limit starts a new one, and a tensor larger than the limit gets a
// group of its own. maxShardSize <= 0 means no limit. It returns no groups
// for no tensors.
func PlanShards(tensors []WriteTensor, maxShardSize int64) [][]WriteTensor {
	var groups [][]WriteTensor
	var cur []WriteTensor
	var curSize int64
	for _, t := range tensors {
		if len(cur) > 0 && maxShardSize > 0 && (curSize > maxShardSize-t.Size) {
			groups = append(groups, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, t)
		curSize += t.Size
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// WriteSharded writes tensors into dir as a Hugging Face checkpoint. When
// they fit in one shard of maxShardSize bytes it writes model.safetensors
// alone; otherwise it writes model-0000i-of-0000N.safetensors shards (split by
// PlanShards, each with meta) and model.safetensors.index.json. It returns
// the names written, shards first and the index last. Each file is written
// atomically (see WriteFile); if one fails, the files this call already
// wrote are removed. Files already in dir that are not overwritten (say, a
// model.safetensors left from an earlier unsharded save) are not touched.
func WriteSharded(dir string, meta Metadata, tensors []WriteTensor, maxShardSize int64) ([]string, error) {
	if maxShardSize <= 0 {
		return nil, fmt.Errorf("%s: max shard size %d: %w (must be positive)", dir, maxShardSize, ErrInvalidSize)
	}
	seen := make(map[string]struct{}, len(tensors))
	var total int64
	for _, t := range tensors {
		if _, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("%s: tensor %s: %w (two tensors have this name)", dir, quote(t.Name), ErrDuplicateName)
		}
		seen[t.Name] = struct{}{}
		if t.Size < 0 || total > math.MaxInt64-t.Size {
			return nil, fmt.Errorf("%s: tensor %s: %w (total size)", dir, quote(t.Name), ErrOverflow)
		}
		total += t.Size
	}
	groups := PlanShards(tensors, maxShardSize)
	if len(groups) <= 1 {
		if err := WriteFile(filepath.Join(dir, SingleFileName), meta, tensors); err != nil {
			return nil, err
		}
		return []string{SingleFileName}, nil
	}
	var written []string
	cleanup := func() {
		for _, name := range written {
			os.Remove(filepath.Join(dir, name))
		}
	}
	weightMap := make(map[string]string, len(tensors))
	for i, g := range groups {
		name := ShardName(i+1, len(groups))
		if err := WriteFile(filepath.Join(dir, name), meta, g); err != nil {
			cleanup()
			return nil, err
		}
		written = append(written, name)
		for _, t := range g {
			weightMap[t.Name] = name
		}
	}
	if err := WriteIndex(dir, total, weightMap); err != nil {
		cleanup()
		return nil, err
	}
	return append(written, IndexFileName), nil
}

// WriteIndex writes dir/model.safetensors.index.json as the Hugging Face
// libraries do (Python json.dumps with indent=2, sort_keys=True, ASCII
// escapes, and a final newline): {"metadata": {"total_size": totalSize},
// "weight_map": {name: file, ...}} with names sorted. The file is written
// atomically.
func WriteIndex(dir string, totalSize int64, weightMap map[string]string) error {
	path := filepath.Join(dir, IndexFileName)
	for name, file := range weightMap {
		if !utf8.ValidString(name) || !utf8.ValidString(file) {
			return &atomicfile.Error{Path: path, Err: fmt.Errorf("tensor %s: %w", quote(name), ErrInvalidUTF8)}
		}
		if file == "" || file == "." || file == ".." || strings.ContainsAny(file, `/\`) {
			return &atomicfile.Error{Path: path, Err: fmt.Errorf("tensor %s: %w (file %s is not a plain file name)", quote(name), ErrInvalidIndex, quote(file))}
		}
	}
	names := make([]string, 0, len(weightMap))
	for name := range weightMap {
		names = append(names, name)
	}
	slices.Sort(names)
	var b []byte
	b = append(b, "{\n  \"metadata\": {\n    \"total_size\": "...)
	b = strconv.AppendInt(b, totalSize, 10)
	b = append(b, "\n  },\n  \"weight_map\": {"...)
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = appendPythonJSONString(b, name)
		b = append(b, ": "...)
		b = appendPythonJSONString(b, weightMap[name])
	}
	if len(names) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, "}\n}\n"...)
	return atomicfile.WriteFile(path, b)
}

// appendPythonJSONString appends s as Python's json.dumps (ensure_ascii=True)
// writes it: ", \, \b \f \n \r \t by name, other characters outside
// printable ASCII as \uxxxx (surrogate pairs above U+FFFF).
func appendPythonJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r >= 0x20 && r < 0x7f:
			b = append(b, byte(r))
		case r > 0xffff:
			r -= 0x10000
			b = u4(b, 0xd800+(r>>10))
			b = u4(b, 0xdc00+(r&0x3ff))
		default:
			b = u4(b, r)
		}
	}
	return append(b, '"')
}
