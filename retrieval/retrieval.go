// Package retrieval is a synthetic key-value retrieval task that small
// language models learn within minutes, so that retrieval accuracy can be
// measured at the training length and beyond it.
//
// A document is a sequence of lines. A record line introduces a new key
// with its value; a query line asks again for the key of an earlier record
// and repeats its value:
//
//	kqz4821
//	bav0937
//	mwe5520
//	?bav0937
//	?kqz4821
//
// Keys are random lowercase letters, distinct within a document; values
// are random digits. A query's value can only be predicted by finding the
// record with the same key earlier in the document and copying what
// follows it, so every query line pays for copying (an induction-style
// look-up at any distance), several times per short document: the copy
// signal is dense. Chance is ln 10 nats per value digit.
//
// The records come before the queries, so a query's record is anywhere in
// the document: retrieval is learnt across the whole training length, not
// only from the last few lines.
//
// Training documents (Generate) state records, then query them in random
// order; evaluation prompts (NewPrompt) are the same kind of text with
// target records placed at given depths among the records and a query for
// each target.
//
// A passkey task (Task.Passkey) is the needle in a haystack instead: lines
// of filler words with one record among them, then its query:
//
//	house point page letter mother
//	kqz7
//	answer found study still learn should world
//	?7
//
// The value holds the document's only digits, so one attention layer that
// looks from the query mark for digits retrieves it: small models learn it
// in minutes, while records of many keys need an induction circuit that
// forms only after millions of tokens.
package retrieval

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/ssmax/ssmax/data"
)

// Task is the shape of the documents. Zero fields take the defaults of
// Default.
type Task struct {
	// KeyLen is the number of letters of a key (a-z).
	KeyLen int `json:"key_len"`
	// ValueLen is the number of digits of a value.
	ValueLen int `json:"value_len"`
	// QueryRate is the fraction of a document's lines that are queries
	// (they follow the records).
	QueryRate float64 `json:"query_rate"`
	// Interleave is the fraction of training documents whose queries are
	// interleaved with the records (each line a query of a random earlier
	// record with probability QueryRate) instead of following them: many
	// queries then ask for a record just read, the easy copy small models
	// learn first. Evaluation prompts always put the queries last.
	Interleave float64 `json:"interleave"`
	// Ordered is the fraction of training documents (of those not
	// interleaved) whose queries ask for the records in the order they were
	// stated, so the query lines repeat the record lines: every token of
	// them is predictable by copying the line after the one just copied,
	// the dense signal that makes copying (induction) heads form, on which
	// look-ups in random order then build. Evaluation prompts are never
	// ordered.
	Ordered float64 `json:"ordered,omitempty"`
	// Passkey makes every document a haystack instead: lines of filler
	// words (fillerWords: no digits) holding one record, and at the end the
	// query for it, the mark alone ("?"), then the value. The value's
	// digits are the only digits of the document, so a single attention
	// layer that looks for digits from the mark retrieves it, without the induction circuit that records of
	// many keys need: the needle-in-a-haystack test at its simplest, which
	// small models learn in minutes, and the one where softmax's fading
	// attention matters most (one needle among n filler tokens). QueryRate,
	// Interleave and Ordered do not apply; evaluation prompts hold one
	// record (one depth) each.
	Passkey bool `json:"passkey,omitempty"`
}

// Default is the task used unless told otherwise: 3-letter keys, 4-digit
// values, half the lines queries (records of 8 bytes, queries of 9, so a
// 256-byte document holds about 15 queries and 60 answer digits).
func Default() Task { return Task{KeyLen: 3, ValueLen: 4, QueryRate: 0.5} }

// WithDefaults returns t with zero fields set from Default.
func (t Task) WithDefaults() Task {
	d := Default()
	if t.KeyLen == 0 {
		t.KeyLen = d.KeyLen
	}
	if t.ValueLen == 0 {
		t.ValueLen = d.ValueLen
	}
	if t.QueryRate == 0 {
		t.QueryRate = d.QueryRate
	}
	return t
}

// Check validates the task.
func (t Task) Check() error {
	if t.KeyLen < 1 || t.KeyLen > 12 {
		return fmt.Errorf("retrieval task: key length %d not in [1, 12]", t.KeyLen)
	}
	if t.ValueLen < 1 || t.ValueLen > 18 {
		return fmt.Errorf("retrieval task: value length %d not in [1, 18]", t.ValueLen)
	}
	if !(t.QueryRate > 0 && t.QueryRate < 1) {
		return fmt.Errorf("retrieval task: query rate %v not in (0, 1)", t.QueryRate)
	}
	if !(t.Interleave >= 0 && t.Interleave <= 1) {
		return fmt.Errorf("retrieval task: interleave %v not in [0, 1]", t.Interleave)
	}
	if !(t.Ordered >= 0 && t.Ordered <= 1) {
		return fmt.Errorf("retrieval task: ordered %v not in [0, 1]", t.Ordered)
	}
	return nil
}

// String is a short description, e.g. "3-letter keys, 4-digit values, 50% queries".
func (t Task) String() string {
	if t.Passkey {
		return fmt.Sprintf("passkey: a %d-letter key with a %d-digit value among filler words", t.KeyLen, t.ValueLen)
	}
	return fmt.Sprintf("%d-letter keys, %d-digit values, %.0f%% queries", t.KeyLen, t.ValueLen, 100*t.QueryRate)
}

// Chance is the loss per value digit of a model that does not retrieve:
// ln 10 nats.
var Chance = math.Log(10)

// Mark is the first character of a query line.
const Mark = "?"

// RecordLine is the text of a record line: the key, then the value (no
// separator: the value's first digit follows the key's last letter, so a
// look-up that matches only the last letter is already right whenever no
// other record shares it, and the copying that small models learn first
// pays at once; matching the whole key is learnt on top).
func RecordLine(key, value string) string { return key + value + "\n" }

// QueryLine is "?" + key: the text before a query's value.
func QueryLine(key string) string { return Mark + key }

// ParseLine splits a line (without its newline) into key and value; query
// is true for a query line. ok is false for a line of another shape.
func (t Task) ParseLine(line string) (key, value string, query, ok bool) {
	t = t.WithDefaults()
	query = strings.HasPrefix(line, Mark)
	line = strings.TrimPrefix(line, Mark)
	if len(line) != t.KeyLen+t.ValueLen {
		return "", "", query, false
	}
	key, value = line[:t.KeyLen], line[t.KeyLen:]
	for _, c := range key {
		if !strings.ContainsRune(Letters, c) {
			return "", "", query, false
		}
	}
	for _, c := range value {
		if c < '0' || c > '9' {
			return "", "", query, false
		}
	}
	return key, value, query, true
}

// Letters are the characters of keys.
const Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// keys draws random keys: distinct ones (next) while at most half of the
// key space is used, and for evaluation filler any key but the reserved
// targets (filler).
type keys struct {
	t    Task
	rng  *rand.Rand
	used map[string]bool
}

// space is the number of keys.
func (k *keys) space() float64 { return math.Pow(float64(len(Letters)), float64(k.t.KeyLen)) }

// full reports whether a new distinct key would take more than half of the
// key space.
func (k *keys) full() bool { return float64(len(k.used)+1) > k.space()/2 }

func (k *keys) draw() string {
	b := make([]byte, k.t.KeyLen)
	for i := range b {
		b[i] = Letters[k.rng.IntN(len(Letters))]
	}
	return string(b)
}

// next returns a key not drawn before (the caller checks full first).
func (k *keys) next() string {
	for {
		if s := k.draw(); !k.used[s] {
			k.used[s] = true
			return s
		}
	}
}

// filler returns a key that is not reserved: a distinct one while the key
// space allows, then any key outside reserved (repeats allowed: only the
// targets need to be unique).
func (k *keys) filler(reserved map[string]bool) string {
	if !k.full() {
		return k.next()
	}
	for {
		if s := k.draw(); !reserved[s] {
			return s
		}
	}
}

// value draws a random value.
func value(rng *rand.Rand, digits int) string {
	b := make([]byte, digits)
	for i := range b {
		b[i] = byte('0' + rng.IntN(10))
	}
	return string(b)
}

// encoder encodes lines, caching the encodings of the fixed pieces.
type encoder struct {
	tok   data.Tokenizer
	cache map[string][]int
}

func newEncoder(tok data.Tokenizer) *encoder { return &encoder{tok: tok, cache: map[string][]int{}} }

// piece encodes a short fixed string (cached).
func (e *encoder) piece(s string) []int {
	if ids, ok := e.cache[s]; ok {
		return ids
	}
	ids := e.tok.Encode(s)
	e.cache[s] = ids
	return ids
}

// prefix is the BOS token when the tokenizer has one distinct from EOS.
func prefix(tok data.Tokenizer) []int {
	if b := tok.BOS(); b >= 0 && b != tok.EOS() {
		return []int{b}
	}
	return nil
}

// Doc is a training document.
type Doc struct {
	// IDs are the tokens.
	IDs []int
	// Answer[i] is true when IDs[i] is a token of a query's value: the
	// tokens that only retrieval predicts.
	Answer []bool
	// Text is the document's text (without the BOS token).
	Text string
}

// Generate returns a document of exactly n tokens drawn with rng: [BOS]
// (when the tokenizer has one distinct from EOS), then lines, each encoded
// on its own, the last cut at n tokens. Records come first, then queries
// (t.QueryRate of the lines), like a prompt that states facts and then
// asks for them: each query asks for an earlier record, every record once
// in random order before any is asked again, so the distance from a query
// back to its record spans the whole document. A passkey document is
// filler lines with its record at a random depth, ending with the query,
// its value and a newline (cut at n tokens when n cannot hold them).
func Generate(rng *rand.Rand, tok data.Tokenizer, t Task, n int) (*Doc, error) {
	t = t.WithDefaults()
	if err := t.Check(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("retrieval: document of %d tokens", n)
	}
	if t.Passkey {
		return generatePasskey(rng, tok, t, n)
	}
	e := newEncoder(tok)
	d := &Doc{IDs: append(make([]int, 0, n+16), prefix(tok)...)}
	d.Answer = make([]bool, len(d.IDs), n+16)
	ks := &keys{t: t, rng: rng, used: map[string]bool{}}
	var recKeys, recVals []string
	var text strings.Builder
	// addRecord states a new record (a fresh key, then its value).
	addRecord := func() {
		k, v := ks.next(), value(rng, t.ValueLen)
		recKeys, recVals = append(recKeys, k), append(recVals, v)
		line := RecordLine(k, v)
		text.WriteString(line)
		ids := e.tok.Encode(line)
		d.IDs = append(d.IDs, ids...)
		d.Answer = append(d.Answer, make([]bool, len(ids))...)
	}
	if t.Interleave > 0 && rng.Float64() < t.Interleave {
		for len(d.IDs) < n {
			if len(recKeys) > 0 && (ks.full() || rng.Float64() < t.QueryRate) {
				i := rng.IntN(len(recKeys))
				d.appendQuery(e, recKeys[i], recVals[i], &text)
				continue
			}
			addRecord()
		}
		d.IDs, d.Answer = d.IDs[:n], d.Answer[:n]
		d.Text = text.String()
		return d, nil
	}
	// The records' share of the tokens, from the lines' lengths in bytes.
	lr, lq := float64(t.KeyLen+t.ValueLen+1), float64(t.KeyLen+t.ValueLen+2)
	share := (1 - t.QueryRate) * lr / ((1-t.QueryRate)*lr + t.QueryRate*lq)
	for len(recKeys) == 0 || (float64(len(d.IDs)) < share*float64(n) && !ks.full()) {
		addRecord()
	}
	ordered := t.Ordered > 0 && rng.Float64() < t.Ordered
	var order []int
	for len(d.IDs) < n {
		if len(order) == 0 {
			order = rng.Perm(len(recKeys))
			if ordered {
				for i := range order {
					order[i] = i
				}
			}
		}
		i := order[0]
		order = order[1:]
		d.appendQuery(e, recKeys[i], recVals[i], &text)
	}
	d.IDs, d.Answer = d.IDs[:n], d.Answer[:n]
	d.Text = text.String()
	return d, nil
}

// appendQuery appends the query line of key with its value, marking the
// value's tokens as answers.
func (d *Doc) appendQuery(e *encoder, key, val string, text *strings.Builder) {
	q := e.tok.Encode(QueryLine(key))
	a := e.tok.Encode(val)
	nl := e.piece("\n")
	d.IDs = append(d.IDs, q...)
	d.Answer = append(d.Answer, make([]bool, len(q))...)
	d.IDs = append(d.IDs, a...)
	for range a {
		d.Answer = append(d.Answer, true)
	}
	d.IDs = append(d.IDs, nl...)
	d.Answer = append(d.Answer, make([]bool, len(nl))...)
	text.WriteString(QueryLine(key) + val + "\n")
}

// DocSeed is the generator of training document index of a run seeded
// with seed: documents are a pure function of (seed, index), so a resumed
// run sees the same ones.
func DocSeed(seed uint64, index int64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x7265747269657661, uint64(index))) // "retrieva"
}

// Query is one of a prompt's final queries.
type Query struct {
	// Depth is the depth asked for; ActualDepth where the target record
	// landed: its line index over the index of the last filler line (0 the
	// first line, 1 the line just before the final queries).
	Depth, ActualDepth float64
	Key, Value         string
	// Record and RecordEnd delimit the target record's tokens in
	// Prompt.IDs (its line with the newline); Start is the offset of the
	// query line ("?key"); AnswerStart and AnswerEnd delimit the value's
	// tokens.
	Record, RecordEnd, Start, AnswerStart, AnswerEnd int
}

// Prompt is an evaluation document laid out as training documents are:
// records (filler records holding one target record per depth), then a
// query for each target in random order, each followed by its value and a
// newline. A model is scored on the value tokens of these queries.
type Prompt struct {
	IDs []int
	// Queries are the final queries in the order they appear.
	Queries []Query
	// FillerLines is the number of records (targets included).
	FillerLines int
}

// line is a record before encoding.
type line struct{ key, val string }

func (l line) text() string { return RecordLine(l.key, l.val) }

// NewPrompt builds a prompt of at most length tokens (at least length
// minus one line) with a target record at each depth (fractions of the
// records: 0 the first line, 1 the last before the queries), drawn with
// rng. Keys are distinct, so each query can only be answered from its
// target record.
// A passkey prompt takes one depth: filler lines with
// the record among them, then its query.
func NewPrompt(rng *rand.Rand, tok data.Tokenizer, t Task, length int, depths []float64) (*Prompt, error) {
	t = t.WithDefaults()
	if err := t.Check(); err != nil {
		return nil, err
	}
	if len(depths) == 0 {
		return nil, fmt.Errorf("retrieval: no depths")
	}
	for _, d := range depths {
		if !(d >= 0 && d <= 1) {
			return nil, fmt.Errorf("retrieval: depth %v not in [0, 1]", d)
		}
	}
	e := newEncoder(tok)
	if t.Passkey {
		if len(depths) != 1 {
			return nil, fmt.Errorf("retrieval: a passkey prompt holds one record, not %d depths", len(depths))
		}
		p := newPasskeyPrompt(rng, tok, e, t, length, depths[0])
		if len(p.IDs) > length {
			return nil, fmt.Errorf("retrieval: length %d is too short for a passkey record and its query", length)
		}
		return p, nil
	}
	ks := &keys{t: t, rng: rng, used: map[string]bool{}}
	pre := prefix(tok)
	targets := make([]line, len(depths))
	budget := length - len(pre)
	for i := range targets {
		targets[i] = line{key: ks.next(), val: value(rng, t.ValueLen)}
		// The record, and the final query encoded as NewPrompt writes it.
		budget -= len(tok.Encode(targets[i].text()))
		budget -= len(tok.Encode(QueryLine(targets[i].key))) + len(tok.Encode(targets[i].val)) + len(e.piece("\n"))
	}
	if budget < 0 {
		return nil, fmt.Errorf("retrieval: length %d is too short for %d targets and their queries", length, len(depths))
	}
	// Filler records other than the targets (their keys may repeat once
	// the key space is used up, never a target's).
	reserved := map[string]bool{}
	for _, tg := range targets {
		reserved[tg.key] = true
	}
	var filler [][]int
	for {
		l := line{key: ks.filler(reserved), val: value(rng, t.ValueLen)}
		ids := tok.Encode(l.text())
		if len(ids) > budget {
			break
		}
		budget -= len(ids)
		filler = append(filler, ids)
	}
	// Place the targets at the line indices nearest to their depths.
	N := len(filler) + len(targets)
	slot := make([]int, N) // index into targets+1, 0 for a filler line
	for i, d := range depths {
		want := int(math.Round(d * float64(N-1)))
		for dist := 0; ; dist++ {
			if j := want - dist; j >= 0 && slot[j] == 0 {
				slot[j] = i + 1
				break
			}
			if j := want + dist; j < N && slot[j] == 0 {
				slot[j] = i + 1
				break
			}
		}
	}
	p := &Prompt{IDs: append([]int(nil), pre...), FillerLines: N}
	p.Queries = make([]Query, len(targets))
	next := 0
	for j := 0; j < N; j++ {
		if i := slot[j] - 1; i >= 0 {
			q := &p.Queries[i]
			q.Depth, q.Key, q.Value, q.Record = depths[i], targets[i].key, targets[i].val, len(p.IDs)
			if N > 1 {
				q.ActualDepth = float64(j) / float64(N-1)
			}
			p.IDs = append(p.IDs, tok.Encode(targets[i].text())...)
			q.RecordEnd = len(p.IDs)
			continue
		}
		p.IDs = append(p.IDs, filler[next]...)
		next++
	}
	// The final queries, in random order.
	order := rng.Perm(len(targets))
	queries := make([]Query, 0, len(targets))
	for _, i := range order {
		q := p.Queries[i]
		p.appendQuery(&q, tok.Encode(QueryLine(q.Key)), tok.Encode(q.Value), e.piece("\n"))
		queries = append(queries, q)
	}
	p.Queries = queries
	return p, nil
}

// appendQuery appends a final query to the prompt: the query line's
// tokens, the value's and the newline's, recording in q where the query
// and its value start and where the value ends.
func (p *Prompt) appendQuery(q *Query, query, val, nl []int) {
	q.Start = len(p.IDs)
	p.IDs = append(p.IDs, query...)
	q.AnswerStart = len(p.IDs)
	p.IDs = append(p.IDs, val...)
	q.AnswerEnd = len(p.IDs)
	p.IDs = append(p.IDs, nl...)
}

// PromptSeed is the generator of prompt trial of length index i of an
// evaluation seeded with seed: every model gets the same prompts.
func PromptSeed(seed uint64, length, trial int) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x70726f6d7074, uint64(length)<<20|uint64(trial))) // "prompt"
}

// Packed is a training sequence of whole documents laid end to end.
type Packed struct {
	// IDs are the tokens; Answer marks the value tokens of queries.
	IDs    []int
	Answer []bool
	// Ends are the indices of the last token of each document but the
	// last (the EOS when the tokenizer has one): what follows starts a new
	// document.
	Ends []int
}

// GeneratePacked returns exactly n tokens of documents drawn with rng, each
// of a length drawn log-uniformly between minLen and n tokens (the last cut
// to fit) and ended by the tokenizer's EOS when it has one. Short
// documents offer a query few records to choose from, so copying pays
// from the first steps of training; long ones teach retrieval across the
// whole training length.
func GeneratePacked(rng *rand.Rand, tok data.Tokenizer, t Task, n, minLen int) (*Packed, error) {
	if minLen < 2 || minLen > n {
		minLen = min(max(2, minLen), n)
	}
	p := &Packed{IDs: make([]int, 0, n), Answer: make([]bool, 0, n)}
	eos := tok.EOS()
	for len(p.IDs) < n {
		size := int(math.Round(float64(minLen) * math.Pow(float64(n)/float64(minLen), rng.Float64())))
		size = min(max(size, 2), n-len(p.IDs))
		body := size
		if eos >= 0 {
			body--
		}
		if body < 1 {
			// No room for a document: pad with EOS (or end the last one).
			p.IDs = append(p.IDs, max(eos, 0))
			p.Answer = append(p.Answer, false)
			continue
		}
		d, err := Generate(rng, tok, t, body)
		if err != nil {
			return nil, err
		}
		p.IDs = append(p.IDs, d.IDs...)
		p.Answer = append(p.Answer, d.Answer...)
		if eos >= 0 {
			p.IDs = append(p.IDs, eos)
			p.Answer = append(p.Answer, false)
		}
		if len(p.IDs) < n {
			p.Ends = append(p.Ends, len(p.IDs)-1)
		}
	}
	return p, nil
}
