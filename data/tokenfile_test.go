package data

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(src TokenSource) []int {
	out := make([]int, src.Len())
	src.Read(out, 0)
	return out
}

func TestTokenFileRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		vocab     int
		tokens    []int
		wantWidth int
		wantSize  int64
	}{
		{"gpt2 uint16", 50257, []int{0, 1, 50256, 65535 % 50257, 42}, 2, 1024 + 2*5},
		{"exactly 65536 uint16", 65536, []int{65535, 0}, 2, 1024 + 4},
		{"llama3 uint32", 128256, []int{128255, 70000, 1}, 4, 1024 + 12},
		{"empty", 10, nil, 2, 1024},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tok.bin")
			if err := WriteTokenFile(p, tc.tokens, tc.vocab); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Size() != tc.wantSize {
				t.Fatalf("size %v (%v), want %d", fi.Size(), err, tc.wantSize)
			}
			for _, format := range []TokenFormat{FormatAuto, FormatLLMC} {
				f, err := OpenTokenFile(p, format)
				if err != nil {
					t.Fatal(err)
				}
				if f.Format() != FormatLLMC || f.width != tc.wantWidth || f.Len() != len(tc.tokens) || f.Path() != p {
					t.Errorf("format %v width %d len %d", f.Format(), f.width, f.Len())
				}
				if got := readAll(f); !equalInts(got, append([]int{}, tc.tokens...)) {
					t.Errorf("tokens %v, want %v", got, tc.tokens)
				}
				for i, want := range tc.tokens {
					if f.At(i) != want {
						t.Errorf("At(%d) = %d, want %d", i, f.At(i), want)
					}
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp*")); len(m) > 0 {
				t.Errorf("temporary files left: %v", m)
			}
		})
	}
}

func TestNanoGPTFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "train.bin")
	raw := []byte{1, 0, 0xFF, 0xFF, 0x39, 0x30}
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []TokenFormat{FormatAuto, FormatNanoGPT} {
		f, err := OpenTokenFile(p, format)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(f); f.Format() != FormatNanoGPT || !equalInts(got, []int{1, 65535, 12345}) {
			t.Errorf("format %v tokens %v", f.Format(), got)
		}
		f.Close()
	}
}

// llmcFile builds an llm.c file image.
func llmcFile(magic, version, count int32, tokenBytes int) []byte {
	b := make([]byte, 1024+tokenBytes)
	binary.LittleEndian.PutUint32(b[0:], uint32(magic))
	binary.LittleEndian.PutUint32(b[4:], uint32(version))
	binary.LittleEndian.PutUint32(b[8:], uint32(count))
	return b
}

func TestTokenFileCorruption(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		format TokenFormat
		want   string
	}{
		{"bad magic explicit", llmcFile(12345, 1, 3, 6), FormatLLMC, "bad llm.c magic 12345"},
		{"bad magic auto-detected", llmcFile(20240521, 1, 3, 6), FormatAuto, "bad magic 20240521"},
		{"bad magic v2 auto-detected", llmcFile(0, 2, 2, 8), FormatAuto, "bad magic 0"},
		{"bad version v1 magic", llmcFile(20240520, 2, 3, 6), FormatAuto, "unsupported version 2"},
		{"bad version v2 magic", llmcFile(20240801, 1, 3, 12), FormatAuto, "unsupported version 1"},
		{"bad version 7", llmcFile(20240520, 7, 3, 6), FormatLLMC, "unsupported version 7"},
		{"truncated header", llmcFile(20240520, 1, 3, 6)[:512], FormatAuto, "truncated llm.c header"},
		{"truncated header explicit", []byte{1, 2}, FormatLLMC, "truncated llm.c header"},
		{"truncated tokens", llmcFile(20240520, 1, 3, 4), FormatAuto, "header says 3 tokens (6 bytes) but the file has 4"},
		{"extra bytes", llmcFile(20240801, 2, 1, 8), FormatAuto, "header says 1 tokens (4 bytes) but the file has 8"},
		{"negative count", llmcFile(20240520, 1, -1, 0), FormatAuto, "header says -1 tokens"},
		{"odd nanoGPT", []byte{1, 2, 3}, FormatAuto, "not a multiple of 2"},
		{"empty", []byte{}, FormatAuto, "empty token file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "corrupt.bin")
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := OpenTokenFile(p, tc.format)
			if err == nil {
				f.Close()
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q, want it to name %s and contain %q", err, p, tc.want)
			}
		})
	}
	if _, err := OpenTokenFile(filepath.Join(t.TempDir(), "missing.bin"), FormatAuto); err == nil || !strings.Contains(err.Error(), "missing.bin") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	for _, tc := range []struct {
		tokens []int
		vocab  int
		want   string
	}{
		{[]int{1, 2, 10}, 10, "token 10 at position 2 outside vocab size 10"},
		{[]int{-1}, 10, "token -1 at position 0"},
		{nil, 0, "invalid vocab size 0"},
	} {
		err := WriteTokenFile(p, tc.tokens, tc.vocab)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("WriteTokenFile(%v, %d) = %v, want %q", tc.tokens, tc.vocab, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed writes left files: %v", ents)
	}
	// A failed write leaves an existing file untouched.
	if err := WriteTokenFile(p, []int{7}, 10); err != nil {
		t.Fatal(err)
	}
	if err := WriteTokenFile(p, []int{11}, 10); err == nil {
		t.Fatal("want error")
	}
	f, err := OpenTokenFile(p, FormatAuto)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(f); !equalInts(got, []int{7}) {
		t.Errorf("file changed by a failed write: %v", got)
	}
}
