#!/usr/bin/env python3
"""make_tokenizer_tests.py: writes the tokenizer oracle under tests/fixtures/tokenizer/ with HF
`tokenizers` (Tokenizer.from_file on each tokenizer.json: the file's own semantics, no
transformers) and the chat oracle with jinja2 rendering each tokenizer_config.json template.

Usage: python tools/make_tokenizer_tests.py [--shared ../shared] [--out tests/fixtures/tokenizer]
(a venv with tools/requirements-tokenizer.txt: tools/make_venv.sh build/venv-tokenizer tools/requirements-tokenizer.txt)

Output, one file per tokenizer version (<name>.cases), one case per line, fields separated by ';':
  E;<text hex>;<ids>;<decode(ids) hex>;<decode(ids, skip_special) hex>;<ids with encode_special_tokens>
  D;<ids>;<decode(ids) hex>;<decode(ids, skip_special) hex>
ids are decimal, separated by single spaces (empty when none). Chat cases (<name>.chat):
  C;<add_generation_prompt 0/1>;<role hex>,<content hex>|<role hex>,<content hex>...;<rendered hex>
A Phi-3 GGUF's chat prompts (phi-3-gguf-chat.ids): llama.cpp's ggml-vocab-phi-3.gguf template rendered
by jinja2, and text glued to special tokens, with the ids HF's current Phi-3 tokenizer.json gives:
  G;<add_generation_prompt 0/1>;<messages as in C lines>;<rendered hex>;<ids>
  T;<text hex>;<ids>
"""
import argparse
import os
import random
import sys

import jinja2
import tokenizers

import tokcase_common
from tokcase_common import ids_str

VERSIONS = ["tokenizer-phi-3-mini", "tokenizer-phi-3-apr2024", "tokenizer-phi-3-medium"]
# Phi-3-medium's tokenizer.json holds the same JSON as Phi-3-mini's (only the formatting differs),
# so it gets chat cases only.
CHAT_ONLY = {"tokenizer-phi-3-medium"}
SPECIALS = ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<|endoftext|>", "</s>", "<s>",
            "<unk>", "<|placeholder1|>", "<|placeholder6|>"]


def fixed_strings():
    s = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "Hello world", " Hello world",
        "Hello World", " Hello World", " Hello World!", "Hello, world!", " this is 🦙.cpp",
        "w048 7tuijk dsdfhu", "нещо на Български", "កាន់តែពិសេសអាចខលចេញ", "Führer", "ied 4 ½ months",
        # multilingual
        "The quick brown fox jumps over the lazy dog.", "Der schnelle braune Fuchs springt über den faulen Hund.",
        "Le cœur a ses raisons que la raison ne connaît point.", "¿Dónde está la biblioteca? ¡Olé!",
        "Съешь же ещё этих мягких французских булок, да выпей чаю.", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
        "我能吞下玻璃而不伤身体。", "私はガラスを食べられます。それは私を傷つけません。",
        "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요", "أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
        "אני יכול לאכול זכוכית וזה לא מזיק לי.", "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती.",
        "ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ", "Tôi có thể ăn thủy tinh mà không hại gì.",
        "Cam yiyebilirim, bana zararı dokunmaz.", "Mogę jeść szkło i mi nie szkodzi.",
        "Μπορώ να φάω σπασμένα γυαλιά χωρίς να πάθω τίποτα.", "ქართული ენა", "Հայերեն լեզու",
        "བོད་ཡིག", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𐌰𐌱𐌲 gothic", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙", "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ",
        "Ελληνικά and English mixed 中文 and 日本語", "Ünïcödé àçcéntš ñ ß ø å æ œ",
        # code
        "def f(x):\n\treturn x * 2\n", "int main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n",
        "\tif (a) {\n\t\tb();\n\t}\n", "for i in range(10):\n        print(i)\n",
        "fn main() {\n    let v: Vec<u8> = vec![1, 2, 3];\n}\n", "const x = () => { return `t${1}`; };",
        "<html>\n  <body class=\"a\">&amp;</body>\n</html>", "SELECT * FROM t WHERE a >= 3 AND b <> 'x';",
        "    \n    \n", "if x:\r\n    y = 1\r\n", "a\tb\tc\t\td", "#include <stdio.h>\r\n",
        "{\"key\": [1, 2.5, -3e10, null, true]}", "x<<=2; y>>=3; z = a&&b || !c;", "$HOME/.config/~user",
        "https://example.com/path?q=1&r=2#frag", "user@example.org", "C:\\Windows\\System32",
        "    ```python\n    x = 1\n    ```", "- item 1\n- item 2\n  - nested", "| a | b |\n|---|---|",
        # whitespace runs
        " " * 5, " " * 8, " " * 16, " " * 17, " " * 31, " " * 33, " " * 64, "\t" * 7, "\n" * 9,
        " \t \t ", "a" + " " * 20 + "b", "x\n\n\n\n\ny", " \n \n ", "\u00a0\u00a0nbsp", "a\u3000b",
        "end  ", "  start", "\r", "\r\r\n", "\n\r", "trailing\n", "\v\f", "\x00", "a\x00b", "\x01\x02\x1f",
        # emoji
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵", "❤️", "🧑🏿‍🚀 astronaut", "Emoji 😀😃😄 run",
        "1️⃣ keycap", "🫠🫡🫢 new emoji", "👩🏽‍💻👨‍🔬", "©®™", "☃ snowman ⛄",
        # combining marks
        "e\u0301", "a\u0300\u0301\u0302", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319",
        "n\u0303o", "\u0301 leading combining", "ḱṷṓn", "한\u1100\u1161", "क्षत्रिय",
        # digits
        "0", "1", "12", "123", "1234", "12345", "123456789012345678901234567890", "3.14159",
        "-42", "1,000,000", "1e-10", "0x1F", "২০২৪", "٠١٢٣", "①②③", "Ⅻ", "½ ¼ ¾",
        "2024-11-22T03:42:24Z", "+1 (555) 123-4567", "v1.2.3-rc.4",
        # special tokens, with and without following whitespace
        "<|user|>\nHello<|end|>\n<|assistant|>\n", "<|user|>Hello<|end|><|assistant|>",
        "<|system|>\nYou are helpful.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n",
        "<|end|>   x", "<|end|>\n\n\nx", "<|end|> \t \n x", "<|end|>\u3000x", "<|end|>\u00a0x",
        "<|end|>\u2003\u2029x", "x <|end|>", "x\n<|end|>\n", " <|end|>", "</s>\n\nfoo", "</s> bar",
        "foo</s>", "<s>hi", "<s> hi", "a<s>b</s>c", "<|endoftext|> a", "<|endoftext|>\nb", "<unk>x",
        "<|placeholder1|><|placeholder2|>", "<|user|><|user|>", "<|user", "|user|>", "<|foo|>",
        "<<|end|>>", "<|end|", "<||end|>", "text<|endoftext|>text", "<|assistant|>   ",
        "   <|assistant|>", "<|user|>\r\nCRLF<|end|>\r\n", "<s><s><s>", "</s></s>", "<|end|><|end|> ",
        # rare characters (byte fallback)
        "\ue000 private use", "\U0010fffd", "\U00020000 cjk ext b", "\ufeffBOM", "\u200b zero width",
        "\u200d lone zwj", "\ufffd replacement", "\U0001f9ec", "\u2028line sep", "𓀀𓀁 hieroglyph",
        "ⴰⵣⵓⵍ tifinagh", "ᏣᎳᎩ cherokee", "ꦗꦮ javanese",
        # prose
        "It's a dog's life, isn't it? We'll see; they'd've known.", "Mr. O'Neil said: \"No.\"",
        "The year was 1969 — a 'giant leap' — for man…", "naïve café résumé coöperate",
        "ALL CAPS TEXT HERE", "camelCaseIdentifier snake_case_id kebab-case-id", "a.b.c.d.e",
        "!!!???...,,,;;;", "((([[[{{{}}}]]])))", "~`@#$%^&*_+=|\\/", "¡¿«»“”‘’„‚",
    ]
    return s


RANDOM_POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789", " ", "  ", "\t", "\n", "\r\n", ".,;:!?'\"()[]{}<>|/\\-_=+*&^%$#@~`",
    "äöüßéèêàçñøåæœ", "абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "的一是不了人我在有他这为之大来以个中上们",
    "あいうえおかきくけこアイウエオ", "가나다라마바사", "😀😃😄😁👍🏽❤️🏳️‍🌈👨‍👩‍👧",
    "\u0301\u0308\u0327", "\u00a0\u3000\u2003\u200b\u200d", "\ue000\U00020000\U0001f9ec",
]


def hexs(b):
    return b.hex()


def random_strings(rng, n):
    return tokcase_common.random_texts(rng, n, RANDOM_POOLS, SPECIALS, p_special=0.12, p_space=0.2)


def random_id_lists(rng, vocab_size, n):
    out = []
    for _ in range(n):
        ids = []
        for _ in range(rng.randint(0, 14)):
            r = rng.random()
            if r < 0.35:
                ids.append(rng.randint(3, 258))  # byte tokens: valid and invalid UTF-8 runs
            elif r < 0.5:
                ids.append(rng.choice([0, 1, 2, 32000, 32001, 32006, 32007, 32010, 29871, 259]))
            else:
                ids.append(rng.randint(0, vocab_size - 1))
        out.append(ids)
    # hand-picked: a valid 3-byte character from byte tokens, one cut short, a leading space
    out += [[3 + 0xE4, 3 + 0xBD, 3 + 0xA0], [3 + 0xE4, 3 + 0xBD], [29871, 22172], [3 + 0x20, 22172],
            [32010, 29871, 22172], [1, 22172], [3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80, 3 + 0xFF]]
    return out


CHATS = [
    [("user", "Hello")],
    [("system", "You are a helpful assistant."), ("user", "What is 2+2?")],
    [("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")],
    [("system", ""), ("user", "Empty system")],
    [("user", "  spaces  \n and lines\n")],
    [("system", "S"), ("user", "U1"), ("assistant", "A1"), ("user", "U2"), ("assistant", "A2")],
    [("user", "Ünïcödé 中文 😀")],
]


def chat_cases(folder):
    import json
    cfg = json.load(open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8"))
    return tokcase_common.chat_case_lines(cfg["chat_template"], CHATS, bos_token=cfg["bos_token"],
                                          eos_token=cfg["eos_token"])


def gguf_string(path, key):
    """One string value of a GGUF file's metadata (a minimal reader: header, then key/values)."""
    import struct
    data = open(path, "rb").read()
    assert data[:4] == b"GGUF"
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    pos = 24
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def read_str(p):
        n = struct.unpack_from("<Q", data, p)[0]
        return data[p + 8:p + 8 + n], p + 8 + n

    def skip_value(t, p):
        if t == 8:
            return read_str(p)[1]
        if t == 9:
            et, count = struct.unpack_from("<IQ", data, p)
            p += 12
            if et == 8:
                for _ in range(count):
                    p = read_str(p)[1]
                return p
            return p + sizes[et] * count
        return p + sizes[t]

    for _ in range(n_kv):
        k, pos = read_str(pos)
        t = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        if k.decode() == key and t == 8:
            return read_str(pos)[0].decode("utf-8")
        pos = skip_value(t, pos)
    raise KeyError(key)


# Text right after a special token (rstrip on HF's side) and before one.
GLUED_TEXTS = [
    "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n", "<|user|>\n\n  spaced<|end|>  \n<|assistant|>",
    "<|system|>\tYou help.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n",
    "</s>  after eos", "<s> after bos", "<s>\nnewline", "<|endoftext|> x", "<|endoftext|>\n\ny",
    "a<|end|>b", "a <|end|> b", "<|user|>\u3000wide space", "<|placeholder1|>\n x<|placeholder6|>  y",
    "<|user|>", "<|user|>\n", "x\n<|user|>\n", "<|assistant|> Sure! Here it is:\n\n```py\nx=1\n```<|end|>",
]


def gguf_chat_ids(shared):
    gguf = os.path.join(shared, "data", "llamacpp", "ggml-vocab-phi-3.gguf")
    tok = tokenizers.Tokenizer.from_file(os.path.join(shared, "data", "phi3", "tokenizer-phi-3-mini",
                                                      "tokenizer.json"))
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(gguf_string(gguf, "tokenizer.chat_template"))
    lines = []
    for msgs in CHATS:
        for gen in (False, True):
            text = tmpl.render(messages=[{"role": r, "content": c} for r, c in msgs],
                               bos_token="<s>", eos_token="<|endoftext|>", add_generation_prompt=gen)
            enc = "|".join(hexs(r.encode()) + "," + hexs(c.encode()) for r, c in msgs)
            ids = tok.encode(text, add_special_tokens=False).ids
            lines.append("G;%d;%s;%s;%s" % (gen, enc, hexs(text.encode("utf-8")), ids_str(ids)))
    for text in GLUED_TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        lines.append("T;%s;%s" % (hexs(text.encode("utf-8")), ids_str(ids)))
    return lines


# lstrip is set on no Phi-3 token, so HF's lstrip handling is checked on a variant of the current
# tokenizer with lstrip=true on <|end|> (32007) and <|user|> (32010); the C test sets the same flags.
LSTRIP_IDS = (32007, 32010)
LSTRIP_TEXTS = [
    " <|end|>", "a <|end|>b", "a \t\n<|end|>\nb", "x\u3000<|user|>y", "<|end|>  <|end|>",
    "<|user|> \n <|end|> x", "word   <|user|>\n\nHi<|end|>\n", "\u00a0<|end|>", "  <|end|>  ",
    "a<|end|>", "\n\n<|user|>", "end </s>  <|end|> <|user|>", "\u2003\u2003<|end|>\u2003",
]


def lstrip_cases(folder):
    import json
    spec = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    for t in spec["added_tokens"]:
        if t["id"] in LSTRIP_IDS:
            t["lstrip"] = True
    tok = tokenizers.Tokenizer.from_str(json.dumps(spec))
    lines = []
    for text in LSTRIP_TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_ns = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        lines.append("E;%s;%s;%s;%s;%s" % (hexs(text.encode("utf-8")), ids_str(ids),
                                            hexs(tok.decode(ids, skip_special_tokens=False).encode()),
                                            hexs(tok.decode(ids, skip_special_tokens=True).encode()),
                                            ids_str(ids_ns)))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="tests/fixtures/tokenizer")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    texts = fixed_strings() + random_strings(random.Random(1234), 220)
    for version in VERSIONS:
        folder = os.path.join(args.shared, "data", "phi3", version)
        with open(os.path.join(args.out, version + ".chat"), "w", encoding="ascii") as f:
            f.write("\n".join(chat_cases(folder)) + "\n")
        if version in CHAT_ONLY:
            continue
        tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        lines = []
        for text in texts:
            tok.encode_special_tokens = False
            ids = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = True
            ids_ns = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            dec = tok.decode(ids, skip_special_tokens=False)
            dec_skip = tok.decode(ids, skip_special_tokens=True)
            lines.append("E;%s;%s;%s;%s;%s" % (hexs(text.encode("utf-8")), ids_str(ids),
                                                hexs(dec.encode("utf-8")),
                                                hexs(dec_skip.encode("utf-8")), ids_str(ids_ns)))
        for ids in random_id_lists(random.Random(99), tok.get_vocab_size(with_added_tokens=True), 120):
            dec = tok.decode(ids, skip_special_tokens=False)
            dec_skip = tok.decode(ids, skip_special_tokens=True)
            lines.append("D;%s;%s;%s" % (ids_str(ids), hexs(dec.encode("utf-8")),
                                         hexs(dec_skip.encode("utf-8"))))
        with open(os.path.join(args.out, version + ".cases"), "w", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")
        print("%s: %d encode cases, %d decode cases" % (version, len(texts), 120 + 7), file=sys.stderr)
    mini = os.path.join(args.shared, "data", "phi3", "tokenizer-phi-3-mini")
    with open(os.path.join(args.out, "tokenizer-phi-3-mini-lstrip.cases"), "w", encoding="ascii") as f:
        f.write("\n".join(lstrip_cases(mini)) + "\n")
    with open(os.path.join(args.out, "phi-3-gguf-chat.ids"), "w", encoding="ascii") as f:
        f.write("\n".join(gguf_chat_ids(args.shared)) + "\n")
    with open(os.path.join(args.out, "VERSIONS"), "w") as f:
        f.write("tokenizers %s\njinja2 %s\n" % (tokenizers.__version__, jinja2.__version__))


if __name__ == "__main__":
    main()
