package data

// Tokenizer converts between text and token ids. Implementations are safe
// for concurrent use.
type Tokenizer interface {
	// Encode returns the ids of text, without adding BOS or EOS.
	Encode(text string) []int
	// Decode returns the text of ids.
	Decode(ids []int) string
	// VocabSize is one more than the largest id the tokenizer can produce.
	VocabSize() int
	// EOS is the end-of-document id, or -1 when there is none.
	EOS() int
	// BOS is the beginning-of-document id, or -1 when there is none.
	BOS() int
	// Name is "bytes" or "bpe".
	Name() string
}
