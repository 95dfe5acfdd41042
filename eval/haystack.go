package eval

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/ssmax/ssmax/data"
)

// Default needle-in-a-haystack templates: {number} is replaced by the
// needle's random number.
const (
	DefaultNeedle   = "The special magic number is {number}."
	DefaultQuestion = "What is the special magic number? The special magic number is"
)

// numberPlaceholder is replaced by the needle's number in a needle template.
const numberPlaceholder = "{number}"

// Haystack is the filler text of needle-in-a-haystack prompts: text files
// (one or a directory tree selected by a glob), read in path order and
// joined with newlines. Binary files (a NUL byte in the first 8000 bytes)
// and empty files are skipped.
type Haystack struct {
	// Path is the file or directory given.
	Path  string
	files []string
}

// OpenHaystack resolves the haystack's files (see data.OpenSource); token
// files (.bin) are rejected, since needles are inserted at line boundaries
// of text.
func OpenHaystack(path, glob string) (*Haystack, error) {
	src, err := data.OpenSource(path, glob)
	if err != nil {
		return nil, err
	}
	if src.Tokens {
		return nil, fmt.Errorf("%s: the haystack must be text, not token files (.bin)", path)
	}
	return &Haystack{Path: path, files: src.Files}, nil
}

// NumFiles returns the number of files of the haystack.
func (h *Haystack) NumFiles() int { return len(h.files) }

// tokens returns the first n tokens of the haystack's text read from file
// start on (wrapping around to the first file, each file at most once).
// Each file is encoded on its own and ends with a newline.
func (h *Haystack) tokens(tok data.Tokenizer, start, n int) ([]int, error) {
	var out []int
	for i := 0; i < len(h.files) && len(out) < n; i++ {
		path := h.files[(start+i)%len(h.files)]
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 || bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
			continue
		}
		text := string(b)
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		out = append(out, tok.Encode(text)...)
	}
	if len(out) < n {
		return nil, fmt.Errorf("haystack %s: %d tokens of text, need %d", h.Path, len(out), n)
	}
	return out[:n], nil
}

// needleText is the text of the prompts of one evaluation.
type needleText struct {
	needle, question string // templates
	digits           int
}

// check validates the templates.
func (t needleText) check() error {
	if !strings.Contains(t.needle, numberPlaceholder) {
		return fmt.Errorf("needle template %q has no %s", t.needle, numberPlaceholder)
	}
	if strings.TrimSpace(t.question) == "" {
		return fmt.Errorf("question template is empty")
	}
	if t.digits < 1 || t.digits > 18 {
		return fmt.Errorf("needle digits %d not in [1, 18]", t.digits)
	}
	return nil
}

// randomNumber returns a number of the given digits, without a leading zero.
func randomNumber(rng *rand.Rand, digits int) string {
	lo := int64(math.Pow10(digits - 1))
	if digits == 1 {
		lo = 0
	}
	return fmt.Sprint(lo + rng.Int64N(int64(math.Pow10(digits))-lo))
}

// niahPrompt is a needle-in-a-haystack prompt: [BOS] haystack-before, needle,
// "\n", haystack-after, "\n", question (at depth 1: [BOS] haystack, "\n",
// needle, "\n", question). The needle starts a line.
type niahPrompt struct {
	IDs []int
	// NeedleStart and NeedleEnd delimit the needle sentence's tokens in IDs.
	NeedleStart, NeedleEnd int
	// Number is the needle's number: the answer.
	Number string
	// AnswerTokens is the length of the answer's encoding (" "+Number): the
	// generation budget.
	AnswerTokens int
	// Depth is where the needle landed: its offset in the haystack over the
	// haystack's length (0 start, 1 end).
	Depth float64
}

// lineStarts marks the token indices of hay where a line starts: 0, and
// every index after a token whose text ends with a newline.
func lineStarts(tok data.Tokenizer, hay []int) []bool {
	starts := make([]bool, len(hay)+1)
	starts[0] = true
	for i, id := range hay {
		starts[i+1] = strings.HasSuffix(tok.Decode([]int{id}), "\n")
	}
	return starts
}

// buildPrompt makes a prompt of exactly length tokens with the needle
// number inserted at the line start of hay nearest to depth (of the
// haystack part). hay must hold enough tokens; starts is lineStarts(hay).
func buildPrompt(tok data.Tokenizer, hay []int, starts []bool, length int, depth float64, t needleText, number string) (*niahPrompt, error) {
	var prefix []int
	if b := tok.BOS(); b >= 0 && b != tok.EOS() {
		prefix = []int{b}
	}
	needle := tok.Encode(strings.ReplaceAll(t.needle, numberPlaceholder, number))
	nl := tok.Encode("\n")
	question := tok.Encode(t.question)
	H := length - len(prefix) - len(needle) - 2*len(nl) - len(question)
	if H < 0 {
		return nil, fmt.Errorf("length %d is shorter than the needle and question (%d tokens)", length, length-H)
	}
	if H > len(hay) {
		return nil, fmt.Errorf("length %d needs %d haystack tokens, have %d", length, H, len(hay))
	}
	// The end of the haystack counts as a line start: there the needle
	// gets its own line between the haystack and the question.
	target := int(math.Round(depth * float64(H)))
	p := 0
	for d := 0; d <= H; d++ {
		if lo := target - d; lo >= 0 && (starts[lo] || lo == H) {
			p = lo
			break
		}
		if hi := target + d; hi <= H && (starts[hi] || hi == H) {
			p = hi
			break
		}
	}
	ids := make([]int, 0, length)
	ids = append(ids, prefix...)
	ids = append(ids, hay[:p]...)
	if p == H {
		ids = append(ids, nl...)
	}
	ns := len(ids)
	ids = append(ids, needle...)
	ne := len(ids)
	ids = append(ids, nl...)
	if p < H {
		ids = append(ids, hay[p:H]...)
		ids = append(ids, nl...)
	}
	ids = append(ids, question...)
	dep := 0.0
	if H > 0 {
		dep = float64(p) / float64(H)
	}
	return &niahPrompt{
		IDs: ids, NeedleStart: ns, NeedleEnd: ne, Number: number,
		AnswerTokens: len(tok.Encode(" " + number)), Depth: dep,
	}, nil
}

// digitsOf returns the decimal digits of s, in order.
func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
