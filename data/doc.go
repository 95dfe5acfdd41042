// Package data provides the tokenizers and datasets that ssmax uses for
// training and evaluation.
//
// # Tokenizers
//
// [Tokenizer] is implemented by a byte tokenizer ([NewByteTokenizer]), by
// a fast byte-level BPE tokenizer (GPT-2, Llama-3, Qwen2: tokenizer.json or
// vocab.json + merges.txt), by a general tokenizer.json pipeline
// (normalizers, pre-tokenizers such as Metaspace, BPE with byte_fallback or
// Unigram, decoders, post-processor templates, added tokens) and by a
// SentencePiece tokenizer.model implementation that encodes as
// sentencepiece does. [LoadModelTokenizer] picks one from a checkpoint
// directory's config.json and tokenizer files; [StreamDecoder] decodes ids
// incrementally for generation.
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
