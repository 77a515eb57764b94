#!/usr/bin/env python3
"""make_phi4_tokenizer_tests.py: the oracle for phi3c's byte-level BPE (Phi-4-mini's tokenizer),
written to tests/fixtures/tokenizer/phi4-mini.cases. Two oracles on the tokenizer.json that
tools/make_phi4_tokenizer.py makes from bpe-openai's o200k_base ranks:
  - HF `tokenizers` (Tokenizer.from_file: the file's own semantics), every text incl. special tokens;
  - tiktoken and bpe-openai, each reading the same ranks (tiktoken.Encoding built on the
    rank table, no download), on the texts without special tokens; both must agree with each other.
and the chat template rendered by jinja2.

Usage: python tools/make_phi4_tokenizer_tests.py TOKENIZER_DIR [--out tests/fixtures/tokenizer]

Lines (fields separated by ';', text and decodes in hex, ids decimal separated by spaces):
  H;<text hex>;<HF ids>;<HF decode(ids) hex>             HF tokenizers
  T;<text hex>;<tiktoken ids>                              tiktoken == bpe-openai (no specials)
  D;<ids>;<HF decode hex>;<HF decode skip_special hex>    decode of id lists (partial UTF-8 too)
  C;<add_generation_prompt>;<role hex>,<content hex>|...;<rendered hex>
  S;<text hex>;<HF ids>   HF on a variant of the file whose <|end|> has rstrip, <|user|> lstrip and
                          <|system|> normalized (the C test sets the same flags)
"""
import argparse
import json
import os
import random
import sys

import bpe_openai
import jinja2
import tiktoken
import tokenizers

import tokcase_common
from tokcase_common import hex_text as hexs, ids_str

SPECIALS = ["<|endoftext|>", "<|endofprompt|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>",
            "<|tool|>"]


def fixed_texts():
    t = [
        "", " ", "Hello world!", " Hello World", "Hello, world! How are you?",
        # multilingual
        "我能吞下玻璃而不伤身体。", "私はガラスを食べられます。それは私を傷つけません。",
        "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요", "أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
        "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती.", "ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ",
        "אני יכול לאכול זכוכית וזה לא מזיק לי.", "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.", "Tôi có thể ăn thủy tinh mà không hại gì.",
        "ქართული ენა", "Հայերեն լեզու", "བོད་ཡིག", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𐌰𐌱𐌲 gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
        "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "Ünïcödé àçcéntš ñ ß ø å æ œ", "ǅemal ǈudi ǋ Ǳ",
        # emoji, ZWJ sequences, flags, skin tones, combining marks
        "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽👍🏿", "🇫🇷🇯🇵", "e\u0301 a\u0308 n\u0303", "\u0301\u0301start",
        "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA",
        "क्षत्रिय", "ภาษาไทย", "ㄱㄴㄷ", "ﷺ", "٣٤٥ ١٢", "१२३४५", "Ⅻ ⅻ Ⅳ", "½ ¾ ⅞",
        # numbers: o200k splits digit runs in 1-3
        "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "-42", "0x1F", "1e10",
        "2024-01-01", "10:30pm", "$100.00", "99%", "v1.2.3", "١٢٣٤",
        # contractions in every case
        "don't", "DON'T", "Don'T", "I'm", "I'M", "you're", "YOU'RE", "You'Re", "we've", "WE'VE",
        "she'll", "SHE'LL", "She'Ll", "he'd", "HE'D", "it's", "IT'S", "It'S", "'s", "'S", "'ll 'LL",
        "x'ſ", "rock'n'roll", "'twas", "O'Neil", "l'homme", "''quoted''",
        # code
        "def f(x):\n\treturn x * 2\n", "int main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n",
        "for i in range(10):\n        print(i)\n", "const x = () => { return `t${1}`; };",
        "<html>\n  <body class=\"a\">&amp;</body>\n</html>", "SELECT * FROM t WHERE a >= 3;",
        "https://example.com/path?q=1&r=2#frag", "a/b/c//d///", "C:\\Windows\\System32", "x<<=2;//c\n",
        "{\"key\": [1, 2.5, -3e10, null, true]}", "    ```python\n    x = 1\n    ```",
        # whitespace runs and newlines
        "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n", "\n ", "  \n  \n  ", " " * 17,
        "a" + " " * 20 + "b", "x\n\n\n\n\ny", "end  ", "  start", "\u00a0\u00a0nbsp", "a\u3000b",
        "tab\t\tsep", "\v\f", "\u2028line\u2029para", "\u0085nel", "a \n b", "a  \n\n  b", " !", "  !!",
        # very long words
        "a" * 1000, "ab" * 700, "supercalifragilisticexpialidocious" * 20, "9" * 500, "!" * 300,
        "字" * 400, "😀" * 200,
    ]
    # special tokens glued to text
    t += ["<|user|>Hi<|end|><|assistant|>", "x<|end|>y", " <|end|> ", "<|endoftext|>\n\nnext",
          "<|system|>You are helpful.<|end|><|user|>2+2?<|end|><|assistant|>", "<|tool|>[]",
          "<|endofprompt|>", "a<|user|>b<|end|>c", "<|end|>", "<|end|><|end|>", "<|en|>", "<|end",
          "<|user|> leading", "trailing <|user|>", "<|endoftext|>I'M 123!"]
    return t


POOLS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " ", "  ", "\t", "\n",
    "\r\n", ".,;:!?'\"()[]{}<>|/\\-_=+*&^%$#@~`", "'s'S'll'LL'd'D're'RE've'VE'm'M't'T",
    "äöüßéèêàçñøåæœÄÖÜ", "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВ", "的一是不了人我在有他这为之大来以个中上们",
    "あいうえおかきくけこアイウエオ", "가나다라마바사", "😀😃😄😁👍🏽❤️🏳️‍🌈👨‍👩‍👧", "\u0301\u0308\u0327\u064b\u0902",
    "\u00a0\u3000\u2003\u200b\u200d", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "कखगघङचछजझञटठडढणतथदधन",
    "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ", "ǅǈǋǲʰʱˆˇ", "١٢٣٤٥०१२३",
]


def random_texts(rng, n, with_specials):
    return tokcase_common.random_texts(rng, n, POOLS, SPECIALS, 0.15 if with_specials else 0.0,
                                       p_space=0.25, max_parts=14, max_len=12)


def has_special(text):
    return any(s in text for s in SPECIALS)


def random_id_lists(rng, n):
    out = []
    byte_ids = list(range(0, 256))  # o200k's first 256 ranks are not all single bytes; decode them anyway
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(0, 12)):
            r = rng.random()
            if r < 0.3:
                ids.append(rng.choice(byte_ids))
            elif r < 0.45:
                ids.append(rng.choice([199999, 200018, 200019, 200020, 200021, 200022, 200023]))
            else:
                ids.append(rng.randint(0, 199997))
        out.append(ids)
    return out


CHATS = [
    [("user", "Hello")],
    [("system", "You are a helpful assistant."), ("user", "What is 2+2?")],
    [("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")],
    [("system", ""), ("user", "Empty system")],
    [("user", "  spaces  \n and lines\n")],
    [("user", "Ünïcödé 中文 😀")],
]


# The added-token flags of the strip variant: id -> (lstrip, rstrip, normalized).
STRIP_FLAGS = {200020: (False, True, False), 200021: (True, False, False), 200022: (False, False, True)}
STRIP_TEXTS = [
    "a <|end|>  b", "x<|end|>\n\ny", "  <|user|>  hi", "\t\n<|user|>\n", "a\u3000<|user|>b<|end|>\u2003c",
    "<|system|> sys <|end|> <|user|> u <|end|> <|assistant|> a", "<|end|><|end|>  <|end|>",
    "word   <|user|>\n\nHi<|end|>\n", "\u00a0<|end|>\u00a0", "  <|system|>  ", "x <|system|>y",
    "<|user|>   ", "   <|end|>", "I'LL <|end|>   12345 <|user|>  ok",
]


def strip_cases(tok_dir):
    spec = json.load(open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8"))
    for t in spec["added_tokens"]:
        if t["id"] in STRIP_FLAGS:
            t["lstrip"], t["rstrip"], t["normalized"] = STRIP_FLAGS[t["id"]]
    tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
    return ["S;%s;%s" % (hexs(t), ids_str(tok.encode(t, add_special_tokens=False).ids)) for t in STRIP_TEXTS]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer_dir")
    ap.add_argument("--out", default="tests/fixtures/tokenizer")
    args = ap.parse_args()
    hf = tokenizers.Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    for text, want in (("<|endoftext|>", 199999), ("<|user|>", 200021), ("<|tool|>", 200023)):
        assert hf.encode(text).ids == [want], "HF does not keep the file's ids"
    reg = bpe_openai.registry.o200k_base()
    tk = tiktoken.Encoding(name="o200k_local", pat_str=reg["pat_str"],
                           mergeable_ranks=reg["mergeable_ranks"], special_tokens=reg["special_tokens"])
    bo = bpe_openai.get_encoding("o200k_base")
    rng = random.Random(4242)
    texts = fixed_texts() + random_texts(rng, 420, False) + random_texts(rng, 160, True)
    lines, n_h, n_t, disagree = [], 0, 0, 0
    for text in texts:
        ids = hf.encode(text, add_special_tokens=False).ids
        lines.append("H;%s;%s;%s" % (hexs(text), ids_str(ids), hexs(hf.decode(ids, skip_special_tokens=False))))
        n_h += 1
        if not has_special(text):
            t_ids, b_ids = tk.encode_ordinary(text), bo.encode_ordinary(text)
            if t_ids != b_ids:
                disagree += 1
                continue
            lines.append("T;%s;%s" % (hexs(text), ids_str(t_ids)))
            n_t += 1
    for ids in random_id_lists(random.Random(77), 150):
        lines.append("D;%s;%s;%s" % (ids_str(ids), hexs(hf.decode(ids, skip_special_tokens=False)),
                                     hexs(hf.decode(ids, skip_special_tokens=True))))
    cfg = json.load(open(os.path.join(args.tokenizer_dir, "tokenizer_config.json"), encoding="utf-8"))
    lines += tokcase_common.chat_case_lines(cfg["chat_template"], CHATS, eos_token=cfg["eos_token"])
    lines += strip_cases(args.tokenizer_dir)
    with open(os.path.join(args.out, "phi4-mini.cases"), "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "VERSIONS.phi4"), "w") as f:
        f.write("tokenizers %s\ntiktoken %s\nbpe-openai %s\njinja2 %s\n" % (
            tokenizers.__version__, tiktoken.__version__, bpe_openai.__version__, jinja2.__version__))
    print("phi4-mini.cases: %d HF texts, %d tiktoken==bpe-openai texts (%d where they disagree, left out)"
          % (n_h, n_t, disagree), file=sys.stderr)


if __name__ == "__main__":
    main()
