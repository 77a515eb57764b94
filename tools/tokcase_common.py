"""tokcase_common.py: what the tokenizer oracle scripts (make_tokenizer_tests.py for the Phi-3
SentencePiece files, make_phi4_tokenizer_tests.py for Phi-4-mini's byte-level BPE) share: the
random text generator, the case-line encodings and the chat-template cases rendered as transformers
renders them. Changing the generator changes the committed .cases files: regenerate them both."""
import jinja2


def random_texts(rng, n, pools, specials=(), p_special=0.0, p_space=0.2, max_parts=12, max_len=10):
    """n texts, each 1..max_parts pieces: a special token (p_special), a run of 1-12 spaces (up to
    p_space), or 1..max_len characters of one pool."""
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, max_parts)):
            r = rng.random()
            if r < p_special:
                parts.append(rng.choice(specials))
            elif r < p_space:
                parts.append(" " * rng.randint(1, 12))
            else:
                pool = rng.choice(pools)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, max_len))))
        out.append("".join(parts))
    return out


def hex_text(text):
    return text.encode("utf-8").hex()


def ids_str(ids):
    return " ".join(str(i) for i in ids)


def chat_case_lines(chat_template, chats, **template_vars):
    """`C;<add_generation_prompt>;<role hex>,<content hex>|...;<rendered hex>` for each chat, with
    and without the generation prompt; jinja2 set up as transformers sets it up."""
    tmpl = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(chat_template)
    lines = []
    for msgs in chats:
        for gen in (False, True):
            text = tmpl.render(messages=[{"role": r, "content": c} for r, c in msgs],
                               add_generation_prompt=gen, **template_vars)
            enc = "|".join(hex_text(r) + "," + hex_text(c) for r, c in msgs)
            lines.append("C;%d;%s;%s" % (gen, enc, hex_text(text)))
    return lines
