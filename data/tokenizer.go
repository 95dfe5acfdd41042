package data

// Tokenizer converts between text and token ids. Implementations are safe
// for concurrent use. Loaders: [LoadModelTokenizer] (a checkpoint
// directory), [LoadTokenizer] (the older form with explicit EOS/BOS ids)
// and [NewByteTokenizer].
type Tokenizer interface {
	// Encode returns the ids of text without the special tokens of the
	// post-processor (no BOS or EOS); special tokens written in the text
	// (e.g. "<|endoftext|>") are still encoded as themselves, except by
	// tokenizer.model tokenizers, which encode text as sentencepiece does.
	Encode(text string) []int
	// EncodeSpecial is Encode plus the special tokens the tokenizer's
	// post-processor adds to a single sequence (Hugging Face's
	// add_special_tokens=True), e.g. a leading BOS for Llama.
	EncodeSpecial(text string) []int
	// Decode returns the text of ids through the tokenizer's decoder chain
	// (special tokens included, as Hugging Face's decode with
	// skip_special_tokens=False; tokenizer.model tokenizers decode as
	// sentencepiece, which drops control tokens). Ids outside the
	// vocabulary are skipped. Decoding ids one at a time does not give the
	// text of the sequence; use a [StreamDecoder] for incremental output.
	Decode(ids []int) string
	// TokenStrings returns the vocabulary strings of ids ("" for unknown
	// ids), as Hugging Face's convert_ids_to_tokens.
	TokenStrings(ids []int) []string
	// VocabSize is one more than the largest id the tokenizer can produce.
	VocabSize() int
	// EOS is the end-of-document id, or -1 when there is none.
	EOS() int
	// BOS is the beginning-of-document id that EncodeSpecial puts first, or
	// -1 when there is none.
	BOS() int
	// Name is "bytes", "bpe" (byte-level or other BPE from tokenizer.json or
	// vocab.json), "unigram" (tokenizer.json), "sentencepiece-bpe" or
	// "sentencepiece-unigram" (tokenizer.model).
	Name() string
}
