// Package data provides the tokenizers and datasets that ssmax uses for
// training and evaluation.
//
// # Tokenizers
//
// [Tokenizer] is implemented by a byte tokenizer ([NewByteTokenizer]) and by
// a GPT-2 style byte-level BPE tokenizer loaded from a Hugging Face
// checkpoint directory ([LoadTokenizer]): tokenizer.json (BPE model with a
// ByteLevel pre-tokenizer, optionally preceded by Split regexes as in
// Llama-3 and Qwen2) or vocab.json + merges.txt. SentencePiece tokenizers
// are not supported; such corpora must be pre-tokenized into a token file.
//
// # Datasets
//
// A corpus is a text file, a directory tree of text files selected by a glob
// on the base name (one document per file), or one or more token files
// (nanoGPT flat uint16 .bin, or llm.c .bin with a 256 int32 header). Text is
// tokenized with [TokenizeCorpus] (in memory) or [Tokenize] (streamed to an
// llm.c token file). Token files are memory-mapped read-only by
// [OpenTokenFile].
//
// A [Dataset] is a [TokenSource] plus its document spans. [SplitDataset]
// splits it deterministically into train and validation [Stream]s. A
// [Loader] packs a stream into fixed windows of SeqLen+1 tokens, shuffles
// the windows per epoch with its own explicit PRNG, and can save and
// restore its exact position ([LoaderState]). An [EvalLoader] yields the
// windows in order, and [LongDocuments] finds documents long enough for
// loss-versus-context-length evaluation.
//
// # Targets and segments
//
// Every document produced from text ends with the tokenizer's EOS (when it
// has one), and starts with its BOS when the tokenizer has a BOS distinct
// from EOS. Within a batch, Targets[j] is the next token, except at the last
// token of a document (its EOS), whose target is -1: the last content token
// predicts EOS, but nothing predicts the first token of the next document
// from the EOS position. Segments lists the row in Inputs where each
// document piece starts; every sequence start is a segment start.
package data
