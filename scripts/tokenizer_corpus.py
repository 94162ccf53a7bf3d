#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Deterministic tokenizer test corpus, chat cases and benchmark inputs.

  python3 scripts/tokenizer_corpus.py                 # (re)writes tests/data/tokenizer/{corpus,chat_cases}.json
  python3 scripts/tokenizer_corpus.py --bench-out DIR # writes the benchmark inputs into DIR

Only the standard library is used. The corpus is generated with this machine's unicodedata (it
is committed, so other Python versions never regenerate it); the benchmark inputs are built
from the committed corpus.json alone, so every machine writes byte-identical files.
"""
import argparse
import json
import os
import random
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")


def chars_in(lo, hi, cats=("L", "M", "N")):
    """Assigned code points in [lo, hi] whose general category starts with one of `cats`."""
    return [chr(c) for c in range(lo, hi + 1)
            if unicodedata.category(chr(c))[0] in cats and unicodedata.category(chr(c)) != "Cn"]


SCRIPTS = {
    "latin_ext": chars_in(0x00C0, 0x024F, ("L",)),
    "greek": chars_in(0x0370, 0x03FF, ("L",)),
    "cyrillic": chars_in(0x0400, 0x04FF, ("L",)),
    "hebrew": chars_in(0x05D0, 0x05EA, ("L",)),
    "arabic": chars_in(0x0621, 0x064A, ("L",)),
    "devanagari": chars_in(0x0900, 0x097F),
    "thai": chars_in(0x0E01, 0x0E5B),
    "hangul": [chr(c) for c in range(0xAC00, 0xD7A4)],
    "cjk": [chr(c) for c in range(0x4E00, 0x9FA6)],
    "hiragana": chars_in(0x3041, 0x3096),
    "katakana": chars_in(0x30A1, 0x30FA),
}

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Voix ambiguë d'un cœur qui, au zéphyr, préfère les jattes de kiwis.",
    "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Tiếng Việt có dấu: Trăm năm trong cõi người ta.",
    "Árvíztűrő tükörfúrógép. Ærøskøbing på Ærø.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน",
    "다람쥐 헌 쳇바퀴에 타고파. 키스의 고유조건은 입술끼리 만나야 하고",
    "我能吞下玻璃而不伤身体。人工智能正在改变世界，你好！",
    "いろはにほへと ちりぬるを わかよたれそ つねならむ。カタカナ",
    "Ça va? ¿Qué tal? ¡Muy bien! «Guillemets» „Anführungszeichen“",
    "Hello, world! 12345 3.14159 1,000,000 -42 +7e10 0x1F",
]

CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "const add = (a, b) => a + b;\r\nconsole.log(add(1, 2));\r\n",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%o''brien%';",
    "#include <vector>\nint main() { std::vector<int> v{1,2,3}; }",
    "    indented\n        more\n\t\ttabs\n",
    "if x != y and not z:\n    pass\nelif x >= 10:\n    raise ValueError('bad')",
    "git commit -m \"fix: handle CRLF\" && make -j8 2>&1 | tee log.txt",
]

URLS = [
    "https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/tokenizer.json?download=true",
    "http://example.com:8080/path/to/file.html#section-2",
    "mailto:someone@example.org",
    "ftp://ftp.example.net/pub/file_v1.2.3.tar.gz",
    "/usr/local/lib/python3.11/site-packages/transformers/__init__.py",
    "C:\\Users\\Admin\\Documents\\report (final).docx",
    "user.name+tag@sub.domain.co.uk",
    "https://ja.wikipedia.org/wiki/日本語 and https://ru.wikipedia.org/wiki/Москва",
]

ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
         "<|box_end|>", "<|vision_pad|>", "<|image_pad|>", "<tool_call>", "</tool_call>",
         "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|repo_name|>", "<|file_sep|>",
         "<tool_response>", "</tool_response>", "<think>", "</think>"]

WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r",
              " \n", "\n ", " \t\n", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085",
              "\u180e", "\ufeff", "\u200b", "\u2009", "\u000b", "\u000c", "\u1680", "\u205f"]

EMOJI = ["\U0001F600", "\U0001F602", "\U0001F44D", "\U0001F44D\U0001F3FD", "\u2764\ufe0f",
         "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
         "\U0001F469\u200d\U0001F4BB", "\U0001F3F3\ufe0f\u200d\U0001F308",
         "\U0001F1FA\U0001F1F8", "\U0001F1EF\U0001F1F5", "\U0001F1E9\U0001F1EA",
         "1\ufe0f\u20e3", "#\ufe0f\u20e3", "\U0001F9D1\U0001F3FF\u200d\U0001F9B0",
         "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "\u263a",
         "\U0001F937\u200d\u2642\ufe0f", "\U0001FAE0"]

CONTRACTIONS = ["I'm", "I'M", "you're", "YOU'RE", "You'Re", "it's", "IT'S", "It'S", "we've",
                "WE'VE", "he'll", "HE'LL", "He'Ll", "she'd", "SHE'D", "don't", "DON'T", "'s",
                "'S", "'t", "'T", "'re", "'RE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll",
                "'lL", "'d", "'D", "'ſ", "'\u212a", "rock'n'roll", "'''", "' s", "’s", "'sa"]

NUMBERS = ["0", "7", "42", "2024", "3.14159", "1,234,567.89", "1e-9", "-0.0", "100%",
           "\uff11\uff12\uff13", "\u0661\u0662\u0663", "\u0967\u0968\u0969", "\u00b2\u00b3",
           "\u2160\u216b", "\u00bd\u00be", "\u2460\u2461", "\U0001D7D8\U0001D7D9",
           "12:30:45", "+1 (555) 010-0199", "v1.2.3-rc.4", "0b1011", "3/4"]

EDGE = ["", " ", "\u0000", "a\u0000b", "\u0001\u0002\u001f", "\u007f", "\u0080\u009f",
        "\ue000", "\uf8ff", "\ufffd", "\uffff", "\ufdd0", "\U0001D518\U0001D52B\U0001D526",
        "\U00020000\U0002A6D6", "\U000E0001\U000E0020", "\U000F0000", "\U0010FFFD",
        "\u0300", "a\u0300\u0301\u0302\u0303", "\u1100\u1161\u11a8", "\u1100\u1161",
        "Å", "Å", "\u212b", "\u2126", "\uFB01", "e\u0301\u0327", "\u0958", "\u00e9\u0301",
        "<", "<|", "<|im_start", "|>", "<think", "</think", "<<think>>", "<|im_start|",
        "<|IM_START|>", "< think>", "\\n", "\\u0000", "\"quoted\"", "''", "``"]


def nfd(s):
    return unicodedata.normalize("NFD", s)


def random_word(rng, alphabet, lo=1, hi=12):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def build_corpus():
    rng = random.Random(20261125)
    out = []
    out += SENTENCES + CODE + URLS + EMOJI + CONTRACTIONS + NUMBERS + EDGE + WHITESPACE
    # Decomposed forms that NFC must compose back.
    out += [nfd(s) for s in SENTENCES if nfd(s) != s]
    out += [nfd(random_word(rng, SCRIPTS["latin_ext"], 3, 10)) for _ in range(30)]
    out += [nfd(random_word(rng, SCRIPTS["hangul"], 2, 6)) for _ in range(15)]  # conjoining jamo
    # Every script: single words, phrases with spaces/punctuation.
    for name, alphabet in sorted(SCRIPTS.items()):
        for _ in range(25):
            out.append(random_word(rng, alphabet))
        for _ in range(15):
            words = [random_word(rng, alphabet, 1, 8) for _ in range(rng.randint(2, 7))]
            seps = [rng.choice([" ", ", ", ". ", "\n", "  ", "。", "? ", "-", " (", ") "])
                    for _ in words]
            out.append("".join(w + s for w, s in zip(words, seps)))
    # Contractions in context, in all cases.
    for c in CONTRACTIONS:
        out.append("They" + c + " here, and " + c.upper() + " THERE " + c.lower() + ".")
    # Added tokens inside text.
    for tok in ADDED:
        out.append("abc" + tok + "def")
        out.append(" " + tok + " ")
        out.append(tok + tok)
        out.append("\n" + tok + "\nHello" + rng.choice(ADDED))
    out.append("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
               "Simple.\n</think>\n\n4<|im_end|>\n")
    # Whitespace runs around words.
    for ws in WHITESPACE:
        out.append("word" + ws + "word")
        out.append(ws * 3 + "x" + ws)
        out.append("a" + ws + ws + "b" + ws + "!" + ws)
    for n in (2, 3, 5, 17, 64):
        out += [" " * n + "a", "a" + " " * n, "\n" * n, "a" + "\t" * n + "b", "\r\n" * n + "x"]
    # Emoji in text.
    for e in EMOJI:
        out.append("I like " + e + "!" + e + e + " ok")
    # Numbers in text.
    for num in NUMBERS:
        out.append("Total: " + num + " items (" + num + ")")
    # Very long words.
    out += ["a" * 1000, "ab" * 700, "x" * 3000, "1" * 500, "-" * 2000, "=" * 513,
            "\U0001F600" * 300, "我" * 1500, random_word(rng, SCRIPTS["latin_ext"], 2000, 2000),
            random_word(rng, "abcdefghijklmnopqrstuvwxyz", 4000, 4000),
            "supercalifragilisticexpialidocious" * 40, " " * 1500, "\n" * 800]
    # Random mixtures of everything to reach well past 1000 strings.
    pools = [SENTENCES, CODE, URLS, EMOJI, CONTRACTIONS, NUMBERS, EDGE, WHITESPACE, ADDED]
    alphabets = sorted(SCRIPTS.values(), key=len)
    while len(out) < 1300:
        parts = []
        for _ in range(rng.randint(2, 8)):
            if rng.random() < 0.5:
                parts.append(rng.choice(rng.choice(pools)))
            else:
                parts.append(random_word(rng, rng.choice(alphabets)))
            parts.append(rng.choice(WHITESPACE + ["", "", ",", ".", "'", "'s"]))
        s = "".join(parts)
        out.append(nfd(s) if rng.random() < 0.2 else s)
    seen, unique = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def m(role, content, reasoning=None):
    d = {"role": role, "content": content}
    if reasoning is not None:
        d["reasoning_content"] = reasoning
    return d


def build_chat_cases():
    sys_p = "You are a helpful assistant."
    q1, q2, q3 = "What is 2+2?", "And 3+3?", "Thanks! Now write a haiku about autumn."
    a1, a2 = "2+2 = 4.", "3+3 = 6."
    convs = [
        [m("user", q1)],
        [m("system", sys_p), m("user", q1)],
        [m("user", q1), m("assistant", a1), m("user", q2)],
        [m("system", sys_p), m("user", q1), m("assistant", a1), m("user", q2)],
        [m("user", q1), m("assistant", a1, "The user asks 2+2. That is 4.")],
        [m("user", q1), m("assistant", a1, "Adding."), m("user", q2)],
        [m("user", q1), m("assistant", a1, "Adding."), m("user", q2),
         m("assistant", a2, "Add again.")],
        [m("user", q1), m("assistant", "<think>\nThe sum is 4.\n</think>\n\n" + a1)],
        [m("user", q1), m("assistant", "<think>\nThe sum is 4.\n</think>\n\n" + a1),
         m("user", q2)],
        [m("system", sys_p), m("user", q1), m("assistant", "<think>Quick.</think>" + a1),
         m("user", q2), m("assistant", "<think>\n\nAgain.\n\n</think>\n\n\n" + a2), m("user", q3)],
        [m("user", q1), m("assistant", a1, "")],
        [m("user", q1), m("assistant", a1, ""), m("user", q2), m("assistant", a2, "")],
        [m("user", q1), m("assistant", "no think tags here"), m("user", q2),
         m("assistant", "</think>only closing")],
        [m("user", "Multi\nline\n\nquestion with <|im_end|> inside?")],
        [m("system", "系统提示：请用中文回答。"), m("user", "你好，世界！🙂")],
        [m("user", q1), m("assistant", a1), m("system", "A late system message."),
         m("user", q2)],
        [m("user", q1), m("assistant", "\n\nLeading newlines answer", "\n\nreasoning with newlines\n\n")],
        [m("user", q1), m("assistant", a1, "R1"), m("user", q2), m("assistant", a2, "R2"),
         m("user", q3), m("assistant", "Leaves fall softly", "Haiku time")],
        [m("user", q1), m("assistant", "Calling a tool."), m("tool", "{\"result\": 4}"),
         m("assistant", a1, "Tool said 4.")],
        [m("user", q1), m("assistant", "Calling tools.", "Need tools"), m("tool", "r1"),
         m("tool", "r2"), m("assistant", "Done.", "Combine")],
        [m("user", "<tool_response>not really a tool</tool_response>"), m("assistant", a1, "x")],
        [m("system", "")],
        [m("user", "")],
        [m("user", "  spaced  "), m("assistant", "  answer  ", "  think  ")],
    ]
    cases = []
    for i, conv in enumerate(convs):
        last_is_assistant = conv[-1]["role"] == "assistant"
        for opts in ({"add_generation_prompt": not last_is_assistant},
                     {"add_generation_prompt": not last_is_assistant, "enable_thinking": False},
                     {"add_generation_prompt": not last_is_assistant, "enable_thinking": True}):
            cases.append({"name": f"conv{i:02d}_" + "_".join(f"{k}={v}" for k, v in opts.items()),
                          "messages": conv, "options": opts})
    # Also without a generation prompt for a conversation ending with a user turn.
    cases.append({"name": "no_generation_prompt", "messages": convs[3],
                  "options": {"add_generation_prompt": False}})
    return cases


def bench_inputs(corpus):
    """Benchmark files (name -> text), built only from the committed corpus strings."""
    rng = random.Random(7)
    docs = [s for s in corpus if 0 < len(s) < 2000]
    parts, size = [], 0
    while size < 10_500_000:
        s = rng.choice(docs)
        parts.append(s)
        size += len(s.encode("utf-8")) + 1
    letters = "abcdefghijklmnopqrstuvwxyz"
    no_spaces = "".join(rng.choice(letters) for _ in range(10_000_000))
    emoji = "".join(rng.choice(EMOJI[:4] + ["\U0001F680", "\U0001F389"]) for _ in range(100_000))
    return {"bench_mixed.txt": "\n".join(parts), "bench_no_spaces.txt": no_spaces,
            "bench_spaces.txt": " " * 1_000_000, "bench_emoji.txt": emoji}


def write_json_lines(path, items):
    """A JSON array with one element per line (reviewable diffs)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in items) + "\n]\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench-out", help="write benchmark inputs into this folder and exit")
    args = ap.parse_args()
    if args.bench_out:
        with open(os.path.join(DATA, "corpus.json"), encoding="utf-8") as f:
            corpus = json.load(f)
        os.makedirs(args.bench_out, exist_ok=True)
        for name, text in bench_inputs(corpus).items():
            with open(os.path.join(args.bench_out, name), "w", encoding="utf-8", newline="") as f:
                f.write(text)
            print(f"wrote {name}: {len(text.encode('utf-8'))} bytes")
        return 0
    os.makedirs(DATA, exist_ok=True)
    corpus = build_corpus()
    write_json_lines(os.path.join(DATA, "corpus.json"), corpus)
    cases = build_chat_cases()
    write_json_lines(os.path.join(DATA, "chat_cases.json"), cases)
    print(f"corpus: {len(corpus)} strings; chat cases: {len(cases)} (unicodedata "
          f"{unicodedata.unidata_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
