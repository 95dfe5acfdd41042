#!/usr/bin/python3
"""Generate the SentencePiece test models and goldens used by data/sp_golden_test.go.

Run from the repository root with Debian's python3-sentencepiece:

    /usr/bin/python3 data/testdata/gen_sp_goldens.py

It trains small SentencePiece models (BPE and Unigram, with and without
byte_fallback, with the Llama "identity" normalization and with the default
nmt_nfkc one) on a sample of Go source from $(go env GOROOT)/src plus a
multilingual sample written below, and writes into data/testdata/sp/:

  <name>.model                  the SentencePiece ModelProto
  <name>-legacy.json            tokenizer.json as transformers' LlamaConverter
  <name>-nonlegacy.json         builds it (legacy=True / legacy=False); only
                                for the identity-normalized models
  goldens.json                  for every model and test string: sp.encode
                                ids and pieces, sp.decode(ids), and the ids a
                                Hugging Face fast Llama tokenizer built from
                                the two tokenizer.json files gives with
                                add_special_tokens=True

transformers and tokenizers are not installed, so the converter is
reproduced here (see llama_tokenizer_json). The expected HF ids are derived
from sentencepiece itself, not from the converted files:

  legacy:     [bos] + sp.encode(text). The legacy normalizer is
              Prepend("▁") (only for non-empty text) + Replace(" ", "▁"),
              which is exactly SentencePiece's identity normalization with
              add_dummy_prefix=True, remove_extra_whitespaces=False.
  non-legacy: Metaspace(prepend_scheme="first", split=False) replaces " "
              with "▁" and prepends "▁" unless the text already starts with
              "▁" (or " "). So: [bos] + sp.encode(text) when the text does
              not start with " " or "▁", else [bos] + the encoding by the
              same model with add_dummy_prefix=False (which is also what the
              slow LlamaTokenizer does with legacy=False).

No Python is needed to run the Go tests: everything they read is committed.
"""

import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sp")

MULTILINGUAL = """\
Le café du coin sert un croissant et une crème brûlée à la française.
Où est la bibliothèque? Elle est près de l'église, à côté du marché.
Die Straße ist überfüllt, aber die Brücke über den Fluss ist schön.
Größere Häuser kosten mehr; das Frühstück ist im Preis enthalten.
El niño comió piñas y jalapeños en la montaña. ¿Dónde está el baño?
A mãe comprou pão e açúcar na padaria. Não há problema nenhum.
Привет, как дела? Сегодня хорошая погода, и мы идём гулять в парк.
Москва — столица России. Я люблю читать книги по вечерам.
Добрый день! Спасибо за помощь, до свидания.
这是一个简单的中文句子。我们今天去公园散步，天气很好。
中国的首都是北京。学习编程语言很有意思。
日本語の文章です。東京は大きな都市で、たくさんの人が住んでいます。
ひらがなとカタカナと漢字を使います。ありがとうございます。
مرحبا بالعالم. اللغة العربية جميلة جدا، ونحن نتعلمها كل يوم.
القاهرة هي عاصمة مصر. شكرا لك على المساعدة.
Καλημέρα κόσμε! Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.
Emoji: 😀 😂 🎉 👍 ❤️ 🚀 🐍 — they appear now and then 😀🎉.
Numbers like 3.14159, 2024-06-01, 1,000,000 and 0x1F are common.
Tabs\tseparate\tcolumns\tin\tsome\tfiles.
"""

# Test strings: every golden is computed for each of these.
CASES = [
    "",
    " ",
    "  ",
    "a",
    "hello world",
    "Hello  World",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "x  y   z    w",
    "tabs\tand\ttabs",
    "line1\nline2\n",
    "\n",
    "\r\n",
    " \t \n ",
    "end with newline\n",
    "digits 1234567890 and 3.14159",
    'func main() {\n\tfmt.Println("hi")\n}\n',
    "for i := 0; i < len(s); i++ { b[i] ^= 0x20 }",
    "café naïve résumé façade Straße",
    "Привет, мир! Как дела?",
    "日本語のテキストと中文测试",
    "مرحبا بالعالم",
    "Καλημέρα",
    "emoji 😀🎉👍🏽 mixed",
    "🙂",
    "한국어 텍스트",
    "देवनागरी लिपि",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur",
    "ﬁ ligature ① ＡＢＣ ｶﾀｶﾅ",
    "▁literal▁marker",
    "<mask> and func fun function",
    "\u00a0non\u00a0breaking",
    "zero\u200bwidth\u200djoiner",
    "a" * 300,
    "x" * 17 + " " + "ab" * 40,
    " ".join(["word%d" % i for i in range(60)]),
    "\t\tindented\n\t\t\tmore\n",
    "!!!???...,,,;;;:::",
    "MixedCASE camelCase snake_case kebab-case",
]


def go_sample(limit=400_000):
    goroot = subprocess.check_output(["go", "env", "GOROOT"], text=True).strip()
    files = []
    for pkg in ["strings", "bufio", "fmt", "sort", "unicode/utf8", "bytes", "errors", "io"]:
        files += sorted(glob.glob(os.path.join(goroot, "src", pkg, "*.go")))
    out, n = [], 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            t = fh.read()
        out.append(t)
        n += len(t)
        if n >= limit:
            break
    return "".join(out)


# --- minimal protobuf (no google.protobuf on Debian without extra packages)


def read_varint(b, i):
    x = shift = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return x, i


def fields(b):
    """Yield (field, wire, value, raw) for a serialized message."""
    i = 0
    while i < len(b):
        start = i
        key, i = read_varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = read_varint(b, i)
        elif w == 1:
            v, i = b[i : i + 8], i + 8
        elif w == 2:
            n, i = read_varint(b, i)
            v, i = b[i : i + n], i + n
        elif w == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError("wire type %d" % w)
        yield f, w, v, b[start:i]


def varint(x):
    out = bytearray()
    while True:
        c = x & 0x7F
        x >>= 7
        if x:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def parse_model(blob):
    pieces, trainer, norm = [], {}, {}
    for f, w, v, _ in fields(blob):
        if f == 1:
            p = {"piece": "", "score": 0.0, "type": 1}
            for f2, w2, v2, _ in fields(v):
                if f2 == 1:
                    p["piece"] = v2.decode("utf-8")
                elif f2 == 2:
                    p["score"] = struct.unpack("<f", v2)[0]
                elif f2 == 3:
                    p["type"] = v2
            pieces.append(p)
        elif f == 2:
            for f2, w2, v2, _ in fields(v):
                trainer[f2] = v2
        elif f == 3:
            for f2, w2, v2, _ in fields(v):
                norm[f2] = v2
    return pieces, trainer, norm


def without_dummy_prefix(blob):
    """The model with normalizer_spec.add_dummy_prefix = false."""
    out = bytearray()
    for f, w, v, raw in fields(blob):
        if f == 3:
            spec = bytearray()
            for f2, w2, v2, raw2 in fields(v):
                if f2 != 3:
                    spec += raw2
            spec += varint(3 << 3 | 0) + varint(0)
            out += varint(3 << 3 | 2) + varint(len(spec)) + spec
        else:
            out += raw
    return bytes(out)


# --- transformers' LlamaConverter, reproduced


def bpe_merges(pieces):
    """SentencePieceExtractor.extract(vocab_scores) of transformers 4.4x:
    every split of a piece into two pieces of the vocab is a merge; the
    splits of one piece are ordered by the ids of their parts, and all
    merges by the merged piece's score, highest first (a stable sort)."""
    vocab = {p["piece"]: i for i, p in enumerate(pieces)}
    merges = []
    for p in pieces:
        merge, score = p["piece"], p["score"]
        local = []
        for index in range(1, len(merge)):
            l, r = merge[:index], merge[index:]
            if l in vocab and r in vocab:
                local.append((l, r, score))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    return [[l, r] for l, r, _ in merges]


def llama_tokenizer_json(pieces, trainer, legacy):
    model_type = trainer.get(3, 1)
    unk_id = trainer.get(40, 0)
    bos_id = trainer.get(41, 1)
    added = []
    for i, p in enumerate(pieces):
        if p["type"] in (2, 3, 4):  # unknown, control (special), user-defined
            added.append(
                {
                    "id": i,
                    "content": p["piece"],
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "special": p["type"] != 4,
                }
            )
    if model_type == 2:
        model = {
            "type": "BPE",
            "dropout": None,
            "unk_token": pieces[unk_id]["piece"],
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": {p["piece"]: i for i, p in enumerate(pieces)},
            "merges": bpe_merges(pieces),
        }
    else:
        model = {
            "type": "Unigram",
            "unk_id": unk_id,
            "vocab": [[p["piece"], p["score"]] for p in pieces],
            "byte_fallback": True,
        }
    bos = pieces[bos_id]["piece"]
    if legacy:
        normalizer = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        }
        pre = None
    else:
        normalizer = None
        pre = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
        },
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": model,
    }


MODELS = [
    # name, model_type, byte_fallback, normalization, vocab, user symbols
    ("bpe-identity", "bpe", False, "identity", 600, []),
    ("bpe-identity-bytes", "bpe", True, "identity", 800, []),
    ("unigram-identity", "unigram", False, "identity", 600, []),
    ("unigram-identity-bytes", "unigram", True, "identity", 800, []),
    ("bpe-nfkc", "bpe", False, "nmt_nfkc", 600, ["<mask>", "func"]),
    ("unigram-nfkc-bytes", "unigram", True, "nmt_nfkc", 800, ["<mask>"]),
]


def train(name, model_type, byte_fallback, norm, vocab, user, corpus):
    prefix = os.path.join(OUT, name)
    kw = dict(
        input=corpus,
        model_prefix=prefix,
        vocab_size=vocab,
        model_type=model_type,
        byte_fallback=byte_fallback,
        normalization_rule_name=norm,
        hard_vocab_limit=False,
        num_threads=1,
        seed_sentencepiece_size=20000,
        max_sentence_length=8192,
        minloglevel=2,
    )
    if norm == "identity":  # as Llama's tokenizer.model
        kw.update(add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True)
    if user:
        kw["user_defined_symbols"] = user
    spm.SentencePieceTrainer.train(**kw)
    os.remove(prefix + ".vocab")
    return prefix + ".model"


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(go_sample())
            f.write(MULTILINGUAL * 20)
        goldens = {"sentencepiece_version": spm.__version__, "models": []}
        for name, mt, bf, norm, vocab, user in MODELS:
            path = train(name, mt, bf, norm, vocab, user, corpus)
            with open(path, "rb") as f:
                blob = f.read()
            sp = spm.SentencePieceProcessor(model_proto=blob)
            sp_nodummy = spm.SentencePieceProcessor(model_proto=without_dummy_prefix(blob))
            pieces, trainer, _ = parse_model(blob)
            entry = {
                "name": name,
                "model": name + ".model",
                "model_type": mt,
                "byte_fallback": bf,
                "normalization": norm,
                "vocab_size": sp.get_piece_size(),
                "bos": sp.bos_id(),
                "eos": sp.eos_id(),
                "unk": sp.unk_id(),
                "cases": [],
            }
            if norm == "identity":
                for legacy in (True, False):
                    fn = "%s-%s.json" % (name, "legacy" if legacy else "nonlegacy")
                    with open(os.path.join(OUT, fn), "w", encoding="utf-8") as f:
                        json.dump(llama_tokenizer_json(pieces, trainer, legacy), f, ensure_ascii=False, indent=None)
                    entry["legacy_json" if legacy else "nonlegacy_json"] = fn
            for text in CASES:
                ids = sp.encode(text)
                case = {
                    "text": text,
                    "ids": ids,
                    "pieces": sp.encode(text, out_type=str),
                    "decoded": sp.decode(ids),
                }
                if norm == "identity":
                    bos = [sp.bos_id()]
                    case["hf_legacy"] = bos + ids
                    nl = sp_nodummy.encode(text) if text.startswith((" ", "▁")) else ids
                    case["hf_nonlegacy"] = bos + nl
                entry["cases"].append(case)
            goldens["models"].append(entry)
            print(name, sp.get_piece_size(), "pieces", file=sys.stderr)
        with open(os.path.join(OUT, "goldens.json"), "w", encoding="utf-8") as f:
            json.dump(goldens, f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
