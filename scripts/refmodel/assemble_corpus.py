#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Assembles the multi-domain training corpus of the bundled reference model.

Sources are freely licensed texts shipped in Debian packages (installed or downloaded with apt-get
as needed; idempotent). Output (default .refcorpus/, git-ignored; carry it to the GPU machine):

  <domain>.train.jsonl.gz, <domain>.heldout.jsonl.gz
                                                 one {"text": ...} object per document, UTF-8,
                                                 NFC, LF line ends, deterministic order (gzip with
                                                 mtime 0, so the bytes are reproducible)
  manifest.json                                  per-domain counts, bytes, sha256 and sources
                                                 (package, version, license summary)

Domains: scripture (KJV, one chapter per document), dictionary (GCIDE entries and WordNet
synsets), quotations (fortunes), c_headers (glibc, Linux UAPI and libstdc++ headers), python
(CPython 3.11 standard library), manpages (Linux man-pages rendered by man), chat (short ChatML
exchanges built from the other domains' documents, so the chat template has something to do).
Held-out split: within each domain's final document order, every 32nd document (index % 32 == 31).
Per-domain byte caps keep the corpus near 40 MB of text (~11 MB gzipped); capped domains keep a hash-ordered (spread out,
deterministic) subset of their documents. Only the Python standard library is used.

Usage: python3 scripts/refmodel/assemble_corpus.py [--out .refcorpus] [--work .refcorpus-src]
"""

import argparse
import concurrent.futures
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import unicodedata

HELDOUT_PERIOD = 32  # every 32nd document of a domain is held out (~3%)

# Byte caps per domain (UTF-8 bytes of document text, before JSON escaping).
CAPS = {
    "scripture": 5_000_000,  # whole KJV, ~4.3 MB
    "dictionary": 9_000_000,
    "quotations": 3_000_000,  # all fortunes but ascii-art, ~2.6 MB
    "c_headers": 8_000_000,
    "python": 8_000_000,
    "manpages": 6_500_000,
    "chat": 1_600_000,
}

# Packages whose files are read in place (must be installed) and those only downloaded and
# unpacked under the work folder (pure data; dict-gcide would otherwise pull in a dictd server).
INSTALLED_PKGS = ["bible-kjv", "bible-kjv-text", "man-db", "groff-base", "bsdextrautils",
                  "manpages", "manpages-dev", "libc6-dev", "linux-libc-dev", "libstdc++-12-dev",
                  "libpython3.11-stdlib", "libpython3.11-minimal"]
UNPACKED_PKGS = ["dict-gcide", "wordnet-base", "fortunes", "fortunes-min"]

KJV_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
    "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos",
    "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
    "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians",
    "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians", "1 Thessalonians",
    "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews", "James",
    "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
]


def log(msg):
    print(f"assemble_corpus: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, **kw).stdout


# ---------------------------------------------------------------------------------------------
# Packages


def dpkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if r.returncode != 0 or "install ok installed" not in r.stdout:
        return None
    return r.stdout.split("\t", 1)[1]


def ensure_installed(pkgs):
    missing = [p for p in pkgs if dpkg_version(p) is None]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-q"], check=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                   check=True, env=env)


def ensure_unpacked(pkg, work):
    """Downloads pkg's .deb with apt-get (once) and unpacks it under work/root/<pkg>."""
    debs = os.path.join(work, "debs")
    root = os.path.join(work, "root", pkg)
    os.makedirs(debs, exist_ok=True)
    found = [f for f in sorted(os.listdir(debs)) if f.startswith(pkg + "_") and f.endswith(".deb")]
    if not found:
        log(f"downloading {pkg}")
        r = subprocess.run(["apt-get", "download", pkg], cwd=debs)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True)
        found = [f for f in sorted(os.listdir(debs))
                 if f.startswith(pkg + "_") and f.endswith(".deb")]
    deb = os.path.join(debs, found[-1])
    version = run(["dpkg-deb", "-f", deb, "Version"], text=True).strip()
    stamp = os.path.join(root, ".version")
    if not (os.path.exists(stamp) and open(stamp).read() == version):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        with open(stamp, "w") as f:
            f.write(version)
    return root, version


def license_summary(copyright_path):
    """The distinct 'License:' short names of a copyright file, or its first lines if free-form."""
    try:
        text = open(copyright_path, encoding="utf-8", errors="replace").read()
    except OSError:
        return "unknown (no copyright file)"
    names = []
    for m in re.finditer(r"^License:[ \t]*(\S[^\n]*)$", text, re.M):
        name = m.group(1).strip()
        if len(name) <= 60 and name not in names:
            names.append(name)
    if names:
        return "; ".join(names)
    first = " ".join(text.split()[:40])
    return "free-form: " + first + " ..."


# ---------------------------------------------------------------------------------------------
# Text cleaning

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text):
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = unicodedata.normalize("NFC", _CTRL.sub("", text))
    lines = [ln.rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n")


def decode(data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def stable_key(s):
    return hashlib.sha1((s if isinstance(s, str) else repr(s)).encode("utf-8")).hexdigest()


def cap_docs(docs, cap):
    """docs: list of (sort_key, text). Keeps a hash-ordered subset within cap bytes, then
    restores sort order."""
    total = sum(len(t.encode("utf-8")) for _, t in docs)
    if total <= cap:
        return sorted(docs)
    kept, size = [], 0
    for key, text in sorted(docs, key=lambda d: stable_key(d[0])):
        n = len(text.encode("utf-8"))
        if size + n > cap:
            continue
        kept.append((key, text))
        size += n
    return sorted(kept)


# ---------------------------------------------------------------------------------------------
# Domains


def scripture_docs():
    out = run(["bible", "-f", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL, cwd="/")
    lines = out.decode("utf-8").splitlines()
    verse_re = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
    chapters, abbrs = [], []
    for ln in lines:
        m = verse_re.match(ln)
        if not m:
            if ln.strip():
                raise SystemExit(f"assemble_corpus: unexpected bible output line: {ln!r}")
            continue
        abbr, ch, vs, text = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if not abbrs or abbrs[-1] != abbr:
            abbrs.append(abbr)
        book = len(abbrs) - 1
        if not chapters or chapters[-1][0] != (book, ch):
            chapters.append(((book, ch), []))
        chapters[-1][1].append(f"{vs} {text.strip()}")
    if len(abbrs) != len(KJV_BOOKS) or len(lines) < 31000:
        raise SystemExit(f"assemble_corpus: bible gave {len(abbrs)} books, {len(lines)} lines")
    docs = []
    for (book, ch), verses in chapters:
        title = f"{KJV_BOOKS[book]} {ch}"
        docs.append(((book, ch), clean(title + "\n\n" + "\n".join(verses))))
    return docs


_DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _dictd_num(s):
    v = 0
    for c in s:
        v = v * 64 + _DICTD_B64.index(c)
    return v


_GCIDE_SOURCE = re.compile(r"^\s*\[[^\]]*(Webster|PJC|WordNet|Century|Suppl|Supl|1913|Source)"
                           r"[^\]]*\]\s*$")


def gcide_docs(root):
    base = os.path.join(root, "usr/share/dictd")
    data = gzip.open(os.path.join(base, "gcide.dict.dz")).read()
    spans = set()
    for ln in open(os.path.join(base, "gcide.index"), encoding="utf-8", errors="replace"):
        parts = ln.rstrip("\n").split("\t")
        if len(parts) != 3 or parts[0].startswith("00"):
            continue
        spans.add((_dictd_num(parts[1]), _dictd_num(parts[2])))
    docs = []
    for off, size in sorted(spans):
        text = decode(data[off:off + size])
        lines = [ln for ln in text.split("\n") if not _GCIDE_SOURCE.match(ln)]
        if not lines:
            continue
        # Headword line: "Dog \Dog\ (d[o^]g), n. [...]" -> "Dog, n. [...]".
        head = re.sub(r"\s*\\[^\\\n]*\\", "", lines[0])
        head = re.sub(r"\s*\([^()]*\[[^\]]*\][^()]*\)", "", head)
        lines[0] = head
        text = "\n".join(lines).replace("{", "").replace("}", "")
        text = clean(text)
        if len(text) >= 20:
            docs.append((("gcide", off), text))
    return docs


_WN_POS = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def wordnet_docs(root):
    docs = []
    for pos in ["noun", "verb", "adj", "adv"]:
        path = os.path.join(root, "usr/share/wordnet", "data." + pos)
        for ln in open(path, encoding="utf-8", errors="replace"):
            if ln.startswith("  ") or " | " not in ln:
                continue
            left, gloss = ln.rstrip("\n").split(" | ", 1)
            f = left.split()
            offset, sstype, wcnt = f[0], f[2], int(f[3], 16)
            words = []
            for i in range(wcnt):
                w = re.sub(r"\([a-z]+\)$", "", f[4 + 2 * i]).replace("_", " ")
                if w not in words:
                    words.append(w)
            text = f"{', '.join(words)} ({_WN_POS.get(sstype, sstype)}): {gloss.strip()}"
            docs.append((("wordnet", pos, offset), clean(text)))
    return docs


def fortune_docs(roots):
    docs = []
    for root in roots:
        d = os.path.join(root, "usr/share/games/fortunes")
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if name.endswith((".dat", ".u8")) or os.path.islink(path) or name == "ascii-art":
                continue
            if not os.path.isfile(path):
                continue
            text = decode(open(path, "rb").read())
            for i, chunk in enumerate(re.split(r"^%[ \t]*$", text, flags=re.M)):
                chunk = clean(chunk)
                if len(chunk) >= 10:
                    docs.append(((name, i), chunk))
    return docs


def dpkg_files(pkg):
    return run(["dpkg", "-L", pkg], text=True).splitlines()


def header_docs():
    paths = set()
    for pkg in ["libc6-dev", "linux-libc-dev", "libstdc++-12-dev"]:
        for p in dpkg_files(pkg):
            if not p.startswith("/usr/include/") or not os.path.isfile(p) or os.path.islink(p):
                continue
            if p.endswith((".h", ".hpp", ".tcc")) or p.startswith("/usr/include/c++/"):
                paths.add(p)
    docs = []
    for p in sorted(paths):
        size = os.path.getsize(p)
        if size < 200 or size > 200_000:
            continue
        text = clean(decode(open(p, "rb").read()))
        if text:
            docs.append((p, text))
    return docs


def python_docs():
    paths = set()
    for pkg in ["libpython3.11-minimal", "libpython3.11-stdlib"]:
        for p in dpkg_files(pkg):
            if (p.startswith("/usr/lib/python3.11/") and p.endswith(".py") and os.path.isfile(p)
                    and "/test/" not in p and "/tests/" not in p and "-packages/" not in p):
                paths.add(p)
    docs = []
    for p in sorted(paths):
        size = os.path.getsize(p)
        if size < 200 or size > 150_000:
            continue
        text = clean(decode(open(p, "rb").read()))
        if text:
            docs.append((p, text))
    return docs


def _render_man(path):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    try:
        raw = subprocess.run(["man", "-E", "UTF-8", "--nh", "--nj", "-l", path], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60).stdout
        out = subprocess.run(["col", "-bx"], input=raw, stdout=subprocess.PIPE, env=env,
                             timeout=60).stdout
    except subprocess.TimeoutExpired:
        return ""
    return clean(out.decode("utf-8", errors="replace"))


def man_docs(cap):
    paths = set()
    for pkg in ["manpages", "manpages-dev"]:
        for p in dpkg_files(pkg):
            if re.match(r"^/usr/share/man/man[0-9]/[^/]+\.gz$", p) and os.path.isfile(p):
                real = os.path.realpath(p)
                head = gzip.open(real).read(200).decode("latin-1")
                if not re.search(r"^\.so ", head, re.M):
                    paths.add(real)
    # Render in hash order only as many pages as the cap needs (~15% slack).
    order = sorted(paths, key=stable_key)
    docs, size = [], 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for i in range(0, len(order), 64):
            batch = order[i:i + 64]
            for p, text in zip(batch, pool.map(_render_man, batch)):
                if len(text) >= 200:
                    docs.append((p, text))
                    size += len(text.encode("utf-8"))
            if size > cap * 1.15:
                break
    return docs


# ---------------------------------------------------------------------------------------------
# Chat domain: short ChatML exchanges in the rendering of the tokenizer's chat template (the last
# assistant turn carries an empty think block, as Qwen3 renders it with enable_thinking=False).


def chat_render(turns, system=None):
    s = ""
    if system:
        s += f"<|im_start|>system\n{system}<|im_end|>\n"
    for i, (q, a) in enumerate(turns):
        s += f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        if i == len(turns) - 1:
            s += "<think>\n\n</think>\n\n"
        s += f"{a}<|im_end|>\n"
    return s


def chat_pairs(domains, split, rng):
    """Question/answer pairs drawn from the given split of the other domains."""
    pairs = []
    for text in domains["scripture"][split]:
        title, _, body = text.partition("\n\n")
        for ln in body.split("\n"):
            vs, _, verse = ln.partition(" ")
            if rng.random() < 0.08:
                q = rng.choice(["Recite {r}.", "Quote {r} from the King James Bible.",
                                "What does {r} say?"]).format(r=f"{title}:{vs}")
                pairs.append((q, verse))
    for text in domains["dictionary"][split]:
        m = re.match(r"^([^,(\n]+)(?:, [^(\n]*)? \((noun|verb|adjective|adverb)\): (.+)$", text)
        if m and rng.random() < 0.35:
            word = m.group(1)
            q = rng.choice(["What does \"{w}\" mean?", "Define {w}.",
                            "Give me the meaning of the word \"{w}\"."]).format(w=word)
            pairs.append((q, text))
    for text in domains["quotations"][split]:
        if len(text) <= 400 and rng.random() < 0.25:
            q = rng.choice(["Tell me a fortune.", "Give me a quotation.", "Say something witty.",
                            "Share a quote."])
            pairs.append((q, text))
    for text in domains["manpages"][split]:
        m = re.search(r"^NAME\n((?:[ \t]+\S.*\n)+)", text + "\n", re.M)
        if not m:
            continue
        name_line = " ".join(m.group(1).split())
        names, sep, what = name_line.partition(" - ")
        if sep:
            first = names.split(",")[0].strip()
            q = rng.choice(["What is {n}?", "What does {n} do?",
                            "Explain {n} in one line."]).format(n=first)
            pairs.append((q, f"{names.strip()} - {what.strip()}"))
    rng.shuffle(pairs)
    return pairs


def chat_docs(domains, split, seed):
    rng = random.Random(seed)
    pairs = chat_pairs(domains, split, rng)
    docs, i = [], 0
    while i < len(pairs):
        n = rng.choice([1, 1, 2, 3])
        turns = pairs[i:i + n]
        i += n
        system = "You are a helpful assistant." if rng.random() < 0.2 else None
        docs.append(chat_render(turns, system))
    return docs


# ---------------------------------------------------------------------------------------------


def split_docs(docs):
    train, held = [], []
    for i, text in enumerate(docs):
        (held if i % HELDOUT_PERIOD == HELDOUT_PERIOD - 1 else train).append(text)
    return train, held


def write_jsonl_gz(path, docs):
    """Writes gzipped JSON lines (mtime 0: reproducible bytes); returns the sha256 of the
    uncompressed content."""
    h = hashlib.sha256()
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=9) as f:
        for text in docs:
            line = (json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            h.update(line)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".refcorpus")
    ap.add_argument("--work", default=".refcorpus-src",
                    help="download/unpack cache for data-only packages")
    ap.add_argument("--no-install", action="store_true",
                    help="fail instead of running apt-get install for missing packages")
    args = ap.parse_args()

    if not args.no_install:
        ensure_installed(INSTALLED_PKGS)
    unpacked = {p: ensure_unpacked(p, args.work) for p in UNPACKED_PKGS}

    def src(pkg, what):
        if pkg in unpacked:
            root, version = unpacked[pkg]
            cr = os.path.join(root, "usr/share/doc", pkg, "copyright")
        else:
            version = dpkg_version(pkg)
            cr = f"/usr/share/doc/{pkg}/copyright"
        return {"package": pkg, "version": version, "what": what, "license": license_summary(cr)}

    raw = {}
    log("scripture")
    raw["scripture"] = (scripture_docs(),
                        [src("bible-kjv-text", "KJV text, via `bible -f` of bible-kjv"),
                         src("bible-kjv", "reader program (used to decode the text)")])
    log("dictionary")
    gc = gcide_docs(unpacked["dict-gcide"][0])
    wn = wordnet_docs(unpacked["wordnet-base"][0])
    # Cap each half separately (GCIDE ~60%, WordNet ~40%) so both styles are present.
    dict_docs = cap_docs(gc, int(CAPS["dictionary"] * 0.6)) + cap_docs(wn, int(CAPS["dictionary"]
                                                                              * 0.4))
    raw["dictionary"] = (dict_docs, [src("dict-gcide", "GCIDE entries (dictd database)"),
                                     src("wordnet-base", "WordNet 3.0 synsets and glosses")])
    log("quotations")
    raw["quotations"] = (fortune_docs([unpacked["fortunes"][0], unpacked["fortunes-min"][0]]),
                         [src("fortunes", "fortune cookie files (except ascii-art)"),
                          src("fortunes-min", "fortune cookie file 'fortunes'")])
    log("c_headers")
    raw["c_headers"] = (header_docs(),
                        [src("libc6-dev", "glibc headers under /usr/include"),
                         src("linux-libc-dev", "Linux UAPI headers under /usr/include"),
                         src("libstdc++-12-dev", "libstdc++ headers under /usr/include/c++/12")])
    log("python")
    raw["python"] = (python_docs(),
                     [src("libpython3.11-minimal", "Python 3.11 standard library (.py)"),
                      src("libpython3.11-stdlib", "Python 3.11 standard library (.py)")])
    log("manpages (rendering)")
    raw["manpages"] = (man_docs(CAPS["manpages"]),
                       [src("manpages", "Linux man-pages, rendered with man/groff"),
                        src("manpages-dev", "Linux man-pages (sections 2, 3), rendered")])

    os.makedirs(args.out, exist_ok=True)
    domains, manifest = {}, {"heldout_rule": f"document index % {HELDOUT_PERIOD} == "
                                             f"{HELDOUT_PERIOD - 1} within each domain",
                             "format": "gzipped JSON lines, one {\"text\": ...} per document; "
                                       "sha256 of the uncompressed lines",
                             "domains": {}}
    for name, (docs, sources) in raw.items():
        kept = [t for _, t in cap_docs(docs, CAPS[name])] if name != "dictionary" else \
            [t for _, t in docs]
        train, held = split_docs(kept)
        domains[name] = {"train": train, "heldout": held, "sources": sources}
    chat_train = chat_docs(domains, "train", seed=1)
    chat_held = chat_docs(domains, "heldout", seed=2)
    chat_train = [t for _, t in cap_docs([(i, t) for i, t in enumerate(chat_train)],
                                         CAPS["chat"])]
    domains["chat"] = {"train": chat_train, "heldout": chat_held[:max(1, len(chat_train) // 30)],
                       "sources": [{"package": "(derived)", "version": "",
                                    "what": "ChatML exchanges built from the scripture, "
                                            "dictionary, quotations and manpages documents of "
                                            "the same split", "license": "as its sources"}]}
    total = 0
    for name, d in domains.items():
        info = {"sources": d["sources"]}
        for split in ["train", "heldout"]:
            path = os.path.join(args.out, f"{name}.{split}.jsonl.gz")
            info[f"{split}_sha256"] = write_jsonl_gz(path, d[split])
            info[f"{split}_docs"] = len(d[split])
            info[f"{split}_bytes"] = sum(len(t.encode("utf-8")) for t in d[split])
            total += info[f"{split}_bytes"]
        manifest["domains"][name] = info
        log(f"{name}: train {info['train_docs']} docs {info['train_bytes'] / 1e6:.2f} MB, "
            f"held-out {info['heldout_docs']} docs {info['heldout_bytes'] / 1e6:.2f} MB")
    manifest["total_bytes"] = total
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    log(f"total {total / 1e6:.2f} MB of text in {args.out}/")


if __name__ == "__main__":
    main()
