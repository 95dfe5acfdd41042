package retrieval

import (
	"math/rand/v2"
	"strings"

	"github.com/ssmax/ssmax/data"
)

// fillerWords are the filler of passkey documents: common lowercase words, no
// digits, so a passkey's value holds the only digits of its document.
var fillerWords = strings.Fields(`the of and to in is it that for on with as was at by be this from or
have an they which one you had not but what all were when we there can said use each she how their
if will up other about out many then them these so some her would make like him into time has look
two more write go see number no way could people my than first water been call who oil its now find
long down day did get come made may part over new sound take only little work know place year live
me back give most very after thing our just name good sentence man think say great where help through
much before line right too mean old any same tell boy follow came want show also around form three
small set put end does another well large must big even such because turn here why ask went men read
need land different home us move try kind hand picture again change off play spell air away animal
house point page letter mother answer found study still learn should world high every near add food
between own below country plant last school father keep tree never start city earth eye light thought`)

// fillerLine is a line of 4 to 12 random filler words.
func fillerLine(rng *rand.Rand) string {
	n := 4 + rng.IntN(9)
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fillerWords[rng.IntN(len(fillerWords))])
	}
	b.WriteByte('\n')
	return b.String()
}

// lastLine is the tokens of a line of filler words of at most budget
// tokens, as many words as fit (none: no tokens).
func lastLine(rng *rand.Rand, tok data.Tokenizer, budget int) []int {
	var line string
	var ids []int
	for {
		w := fillerWords[rng.IntN(len(fillerWords))]
		if line != "" {
			w = " " + w
		}
		next := tok.Encode(line + w + "\n")
		if len(next) > budget {
			return ids
		}
		line, ids = line+w, next
	}
}

// generatePasskey is Generate for a passkey task: a prompt of at most n
// tokens with its record at a random depth, padded to exactly n tokens by
// the start of a filler line (ended by a newline) after the prefix. When n
// is too short for the record and its query, the document is the prefix,
// the record and the query, cut at n tokens.
func generatePasskey(rng *rand.Rand, tok data.Tokenizer, t Task, n int) (*Doc, error) {
	e := newEncoder(tok)
	p := newPasskeyPrompt(rng, tok, e, t, n, rng.Float64())
	pre := prefix(tok)
	d := &Doc{IDs: make([]int, 0, n), Answer: make([]bool, 0, n)}
	d.IDs = append(d.IDs, p.IDs[:len(pre)]...)
	if pad := n - len(p.IDs); pad > 0 {
		nl := e.piece("\n")
		head := tok.Encode(fillerLine(rng) + fillerLine(rng) + fillerLine(rng))
		k := max(pad-len(nl), 0)
		for len(head) < k {
			head = append(head, tok.Encode(fillerLine(rng))...)
		}
		d.IDs = append(d.IDs, head[:k]...)
		d.IDs = append(d.IDs, nl[:pad-k]...)
	}
	shift := len(d.IDs) - len(pre)
	d.IDs = append(d.IDs, p.IDs[len(pre):]...)
	d.Answer = make([]bool, len(d.IDs))
	q := p.Queries[0]
	for i := q.AnswerStart; i < q.AnswerEnd; i++ {
		d.Answer[i+shift] = true
	}
	d.IDs, d.Answer = d.IDs[:n], d.Answer[:n]
	d.Text = tok.Decode(d.IDs[len(pre):])
	return d, nil
}

// newPasskeyPrompt builds a passkey prompt of at most length tokens (at
// least length less the tokens of a filler word and a newline): filler
// lines with the record at depth among them (0 the first line, 1 the last),
// then the query (Mark alone: there is one record to ask for), the value
// and a newline. When length cannot hold the record
// and the query, the prompt has no filler and is longer than length.
func newPasskeyPrompt(rng *rand.Rand, tok data.Tokenizer, e *encoder, t Task, length int, depth float64) *Prompt {
	ks := &keys{t: t, rng: rng, used: map[string]bool{}}
	target := line{key: ks.next(), val: value(rng, t.ValueLen)}
	rec := tok.Encode(target.text())
	query := e.piece(Mark) // the query asks for the passkey without naming it
	val := tok.Encode(target.val)
	nl := e.piece("\n")
	pre := prefix(tok)
	budget := length - len(pre) - len(rec) - len(query) - len(val) - len(nl)
	var filler [][]int
	for {
		ids := tok.Encode(fillerLine(rng))
		if len(ids) > budget {
			// A last, shorter line of the words that fit.
			if ids = lastLine(rng, tok, budget); len(ids) > 0 {
				filler = append(filler, ids)
			}
			break
		}
		budget -= len(ids)
		filler = append(filler, ids)
	}
	N := len(filler) + 1
	at := int(depth*float64(N-1) + 0.5)
	p := &Prompt{IDs: append([]int(nil), pre...), FillerLines: N}
	q := Query{Depth: depth, Key: target.key, Value: target.val}
	if N > 1 {
		q.ActualDepth = float64(at) / float64(N-1)
	}
	for j := 0; j <= len(filler); j++ {
		if j == at {
			q.Record = len(p.IDs)
			p.IDs = append(p.IDs, rec...)
			q.RecordEnd = len(p.IDs)
		}
		if j < len(filler) {
			p.IDs = append(p.IDs, filler[j]...)
		}
	}
	p.appendQuery(&q, query, val, nl)
	p.Queries = []Query{q}
	return p
}
