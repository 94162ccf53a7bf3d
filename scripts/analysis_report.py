#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Regenerates docs/routing_report.md (+ plots in docs/routing_report/) from the bundled reference
model and the committed held-out texts (tests/data/analysis/heldout/), using only moestream
subcommands (trace, experts, perplexity, cache-sim, tokenize, generate). Standard library only.

usage: python3 scripts/analysis_report.py [--build build] [--ppl-tokens 1024] [--trace-tokens 4096] [--threads 0]
       (scripts/analysis_report.sh wraps it)
"""
import argparse
import json
import os
import subprocess
import sys
import time

DOMAINS = ["scripture", "dictionary", "quotations", "c_headers", "python", "manpages", "chat"]
# (label, extra flags) for the perplexity table; masks are expert ids 0..n-1 of every layer.
VARIANTS = [
    ("full (top-4 of 32)", []),
    ("mask 0-7 (top-4 of 8)", ["--expert-mask", "0-7"]),
    ("mask 0-3 (top-4 of 4)", ["--expert-mask", "0-3"]),
    ("mask 0-1 (top-2 of 2)", ["--expert-mask", "0-1", "--top-k", "2"]),
    ("top-3", ["--top-k", "3"]),
    ("top-2", ["--top-k", "2"]),
    ("top-1", ["--top-k", "1"]),
]
SIM_BUDGETS = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256]
RUNTIME_BUDGETS = {1: [32, 96], 32: [96, 224]}  # batch → budgets in experts (slots)
SAMPLE_PROMPTS = {
    "scripture": "1 In the beginning God created the heaven and the earth.\n2 And",
    "python": "def read_config(path):\n    \"\"\"Read a configuration file.\"\"\"\n",
}


def run(args, **kw):
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("command failed (%d): %s\n%s" % (r.returncode, " ".join(args), r.stderr))
    return r, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--ppl-tokens", type=int, default=1024,
                    help="tokens per domain for the perplexity variants")
    ap.add_argument("--trace-tokens", type=int, default=4096,
                    help="tokens per domain for the routing traces")
    ap.add_argument("--threads", default="0")
    ap.add_argument("--out", default="docs/routing_report.md")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    mbin = os.path.join(a.build, "moestream")
    model = "models/qwen3-moe-ref"
    data = "tests/data/analysis/heldout"
    plots = os.path.splitext(a.out)[0]
    work = os.path.join(a.build, "analysis_report")
    os.makedirs(work, exist_ok=True)
    os.makedirs(plots, exist_ok=True)
    thr = ["--threads", a.threads]
    t_start = time.time()

    # 1. Routing traces of every domain's held-out text (windows of 512 tokens).
    traces = []
    for d in DOMAINS:
        out = os.path.join(work, d + ".trace.jsonl")
        run([mbin, "trace", "--model", model, "--file", os.path.join(data, d + ".txt"),
             "--ctx", "512", "--max-tokens", str(a.trace_tokens), "--out", out] + thr)
        traces.append(out)
    # 2. Expert statistics.
    run([mbin, "experts", "--trace"] + traces + ["--labels", ",".join(DOMAINS), "--out-dir",
                                                 os.path.join(plots, "experts"), "--shuffles",
                                                 "20", "--block", "128"])
    ex = json.load(open(os.path.join(plots, "experts", "experts.json")))
    experts_md = open(os.path.join(plots, "experts", "experts.md")).read()

    # 3. Perplexity per domain × variant.
    ppl = {}
    for d in DOMAINS:
        for label, flags in VARIANTS:
            out = os.path.join(work, "ppl.json")
            run([mbin, "perplexity", os.path.join(data, d + ".txt"), "--model", model,
                 "--ctx", "512", "--max-tokens", str(a.ppl_tokens), "--json-out", out] + flags + thr)
            ppl[(d, label)] = json.load(open(out))

    # 4. Greedy samples: full routing vs masked to 4 experts.
    samples = []
    for d, prompt in SAMPLE_PROMPTS.items():
        row = [d, prompt]
        for flags in ([], ["--expert-mask", "0-3"]):
            g, _ = run([mbin, "generate", "--model", model, "--prompt", prompt, "-n", "48"]
                       + flags + thr)
            row.append(g.stdout)
        samples.append(row)

    # 5. Cache simulation: all domains' traces back to back, replayed token by token (decode).
    mixed = os.path.join(work, "mixed.trace.jsonl")
    with open(mixed, "w") as f:
        for t in traces:
            f.write(open(t).read())
    sim_dir = os.path.join(plots, "cache_sim")
    run([mbin, "cache-sim", mixed, "--budget", ",".join(map(str, SIM_BUDGETS)), "--policy",
         "lru,lfu,layer,belady", "--batch", "1", "--out-dir", sim_dir])
    sim = json.load(open(os.path.join(sim_dir, "cache_sim.json")))

    # 6. The runtime's cache vs the simulator on the same run's trace.
    match = []
    text = os.path.join(data, "python.txt")
    for batch, budgets in RUNTIME_BUDGETS.items():
        for slots in budgets:
            stats = os.path.join(work, "stats.json")
            tr = os.path.join(work, "rt.trace.jsonl")
            run([mbin, "perplexity", text, "--model", model, "--ctx", "512", "--max-tokens",
                 "1024", "--batch", str(batch), "--expert-cache", "%dK" % (slots * 96),
                 "--cache-policy", "lru", "--stats-json", stats, "--trace-out", tr] + thr)
            st = json.load(open(stats))
            sd = os.path.join(work, "rt_sim")
            run([mbin, "cache-sim", tr, "--budget", str(st["n_slots"]), "--policy", "lru",
                 "--batch", str(batch), "--out-dir", sd])
            sp = json.load(open(os.path.join(sd, "cache_sim.json")))["points"][0]
            match.append((batch, st["n_slots"], st["slot_bytes"], st["total"], sp))

    write_report(a, ex, experts_md, ppl, samples, sim, match, time.time() - t_start)


def fmt_js_table(ex):
    rows = ["| layer | mean JS between domains (bits) | shuffled-label baseline (20 seeds) | "
            "ratio |", "|---|---|---|---|"]
    for L in ex["layers"]:
        rows.append("| %d | %.4f | %.4f ± %.4f | %.0f× |" % (
            L["layer"], L["mean_js"], L["baseline_js_mean"], L["baseline_js_sd"],
            L["mean_js"] / L["baseline_js_mean"] if L["baseline_js_mean"] else 0))
    return "\n".join(rows)


def write_report(a, ex, experts_md, ppl, samples, sim, match, seconds):
    labels = [v[0] for v in VARIANTS]
    L = []
    L.append("# Routing report: the bundled reference model (models/qwen3-moe-ref)\n")
    L.append("Generated by `scripts/analysis_report.sh` (%.0f s on this machine) from the "
             "held-out texts in `tests/data/analysis/heldout/` (≈24 KB per domain, cut from the "
             "corpus's held-out split; see the README there for sources and licenses). Every "
             "number comes from a `moestream` subcommand; docs/analysis.md describes the tools.\n"
             % seconds)
    geo = {}
    for l in labels[1:]:
        r = 1.0
        for d in DOMAINS:
            r *= ppl[(d, l)]["perplexity"] / ppl[(d, labels[0])]["perplexity"]
        geo[l] = r ** (1.0 / len(DOMAINS))
    ratios = [x["mean_js"] / x["baseline_js_mean"] for x in ex["layers"]]
    L.append("**Summary.** (a) Domains route measurably differently at every layer: mean "
             "JS divergence between domains is %.0f–%.0f× the shuffled-label baseline "
             "(%.3f–%.3f bits vs ≤ %.3f). (b) Restricting the router garbles the model: masked to "
             "8 experts the perplexity is %.0f× the full router's (geometric mean over domains), "
             "to 4 experts %.0f×, to 2 experts %.0f×; lowering top-k hurts far less (top-3 "
             "%.2f×, top-2 %.2f×, top-1 %.2f×). (c) With 64 of 256 experts cached, the decode "
             "hit rate is %.2f with LRU and %.2f with Belady's optimum; %s\n" % (
                 min(ratios), max(ratios), min(x["mean_js"] for x in ex["layers"]),
                 max(x["mean_js"] for x in ex["layers"]),
                 max(x["baseline_js_mean"] for x in ex["layers"]), geo[labels[1]],
                 geo[labels[2]], geo[labels[3]], geo[labels[4]], geo[labels[5]], geo[labels[6]],
                 next(p["hit_rate"] for p in sim["points"]
                      if p["policy"] == "lru" and p["budget_experts"] == 64),
                 next(p["hit_rate"] for p in sim["points"]
                      if p["policy"] == "belady" and p["budget_experts"] == 64),
                 "the runtime's LRU hit/miss/eviction counts equal the simulator's exactly at "
                 "every budget tried." if all(t["hits"] == sp["hits"] and t["misses"] == sp["misses"]
                                              for _, _, _, t, sp in match)
                 else "**the runtime's counts differ from the simulator's** (see (c))."))
    # (a)
    L.append("## (a) Do domains select different experts?\n")
    L.append("Routing traces of each domain's held-out text (`moestream trace`, windows of 512 "
             "tokens), usage of each expert per layer and domain (`moestream experts`). The "
             "divergence between domains is the mean Jensen–Shannon divergence over the 21 "
             "domain pairs; the baseline permutes the domain labels over blocks of 128 "
             "consecutive tokens (20 seeds), which keeps the amount of text and its local "
             "correlation but removes any domain signal.\n")
    L.append(fmt_js_table(ex) + "\n")
    sig = [x for x in ex["layers"]
           if x["mean_js"] > x["baseline_js_mean"] + 5 * x["baseline_js_sd"]]
    worst = min(ex["layers"], key=lambda x: x["mean_js"] / max(x["baseline_js_mean"], 1e-12))
    if len(sig) == len(ex["layers"]):
        verdict = "yes, at every layer"
    elif sig:
        verdict = "at layers %s only" % ", ".join(str(x["layer"]) for x in sig)
    else:
        verdict = "no: no layer exceeds its baseline by 5 standard deviations"
    L.append("**Answer:** %s (criterion: mean JS above the shuffled baseline's mean + 5 sd). The "
             "least specialised layer (%d) is at %.1f× its baseline. Per-domain tables (dominant "
             "experts, co-activation, reuse distances) follow; plots: "
             "[JS by layer](routing_report/experts/js_by_layer.svg), "
             "[usage heatmaps](routing_report/experts/usage_layer0.svg) (usage_layer0..7).\n"
             % (verdict, worst["layer"], worst["mean_js"] / max(worst["baseline_js_mean"], 1e-12)))
    body = experts_md.split("\n", 2)[2].replace("](", "](routing_report/experts/")
    body = body.replace("## ", "### ")
    L.append(body + "\n")
    # (b)
    L.append("## (b) Perplexity with restricted routing\n")
    L.append("`moestream perplexity` on the first %d tokens of each domain's held-out text, "
             "non-overlapping windows of 512 tokens (so these differ from the model card's numbers, which use the whole held-out split). `mask 0-n` restricts every layer's router "
             "to experts 0..n (softmax over the allowed ones, then top-k); with 2 allowed experts "
             "top-k must drop to 2. Both knobs print the not-exact warning.\n" % a.ppl_tokens)
    L.append("| domain | " + " | ".join(labels) + " |")
    L.append("|---|" + "---|" * len(labels))
    for d in DOMAINS:
        L.append("| %s | " % d + " | ".join("%.2f" % ppl[(d, l)]["perplexity"] for l in labels)
                 + " |")
    full = [ppl[(d, labels[0])]["perplexity"] for d in DOMAINS]
    L.append("\nRatio to the full router (geometric mean over domains):\n")
    L.append("| variant | × full perplexity |\n|---|---|")
    for l in labels[1:]:
        r = 1.0
        for d, f in zip(DOMAINS, full):
            r *= ppl[(d, l)]["perplexity"] / f
        L.append("| %s | %.2f× |" % (l, r ** (1.0 / len(DOMAINS))))
    L.append("\nGreedy continuations (48 tokens), full routing vs `--expert-mask 0-3`:\n")
    for d, prompt, full_s, masked_s in samples:
        L.append("**%s** — prompt:\n\n```\n%s\n```\n\nfull router:\n\n```\n%s\n```\n\n"
                 "masked to experts 0-3:\n\n```\n%s\n```\n" % (d, prompt, full_s, masked_s))
    # (c)
    L.append("## (c) Expert cache: hit rate vs budget\n")
    L.append("`moestream cache-sim` replays all seven domains' traces back to back (%d "
             "accesses, decode order: one token at a time, each token's experts ascending per "
             "layer) through the runtime's policy objects (experts/cache_policy.h); Belady's "
             "MIN is the offline optimum. Budget in experts (of %d in all; one expert = 96 KiB "
             "slot). Plot: [cache_sim.svg](routing_report/cache_sim/cache_sim.svg).\n"
             % (sim["n_accesses"], sim["n_layers"] * sim["n_experts"]))
    caps = sorted({p["budget_experts"] for p in sim["points"]})
    pols = []
    for p in sim["points"]:
        if p["policy"] not in pols:
            pols.append(p["policy"])
    L.append("| policy | " + " | ".join(str(c) for c in caps) + " |")
    L.append("|---|" + "---|" * len(caps))
    for pol in pols:
        hr = {p["budget_experts"]: p["hit_rate"] for p in sim["points"] if p["policy"] == pol}
        L.append("| %s | " % pol + " | ".join("%.3f" % hr[c] for c in caps) + " |")
    def hr(pol, c):
        return next(p["hit_rate"] for p in sim["points"]
                    if p["policy"] == pol and p["budget_experts"] == c)
    best_online = {c: max(hr(p, c) for p in pols if p != "belady") for c in caps}
    L.append("\nReading: one decoded token touches %d experts (%d layers × top-%d) in a fixed "
             "layer order, so below that many slots LRU evicts every expert just before its layer "
             "comes back (hit rate %.3f at 16 slots), while aged LFU keeps the hot experts "
             "(%.3f). At 64 slots (25%% of the experts, 6 MiB) the best online policy reaches "
             "%.3f against Belady's %.3f; at 128 slots (half) %.3f against %.3f.\n" % (
                 sim["n_layers"] * 4, sim["n_layers"], 4, hr("lru", 16), hr("lfu", 16),
                 best_online[64], hr("belady", 64), best_online[128], hr("belady", 128)))
    L.append("\n### The runtime's cache agrees with the simulator\n")
    L.append("`moestream perplexity` on 1024 tokens of python with `--expert-cache <slots × 96K> "
             "--cache-policy lru --stats-json` and `--trace-out`, then `cache-sim` on that "
             "trace with the same `--batch`. The runtime asks the cache once per forward batch "
             "and layer for each distinct active expert, in ascending id order (an expert used "
             "by several tokens of a prefill batch is one access); cache-sim groups the trace "
             "the same way. Because a batch's experts are the most recently used entries, the "
             "pins the runtime holds never change an LRU victim, so the counts match exactly:\n")
    L.append("| batch | slots | runtime hits | runtime misses | runtime evictions | sim hits | "
             "sim misses | sim evictions | hit rate |\n|---|---|---|---|---|---|---|---|---|")
    for batch, slots, _, tot, sp in match:
        L.append("| %d | %d | %d | %d | %d | %d | %d | %d | %.4f |" % (
            batch, slots, tot["hits"], tot["misses"], tot["evictions"], sp["hits"], sp["misses"],
            sp["evictions"], sp["hit_rate"]))
    ok = all(t["hits"] == s["hits"] and t["misses"] == s["misses"] for _, _, _, t, s in match)
    L.append("\nWith prefill batches of 32 tokens each layer's batch uses nearly all 32 experts, "
             "so the cache sees long cyclic scans and LRU hits little until the budget approaches "
             "every expert; token-by-token decoding has the locality of section (a).")
    L.append("\n%s\n" % ("All rows match exactly." if ok else
                         "**MISMATCH** between runtime and simulator: see the rows above."))
    with open(a.out, "w") as f:
        f.write("\n".join(L))
    print("wrote", a.out)


if __name__ == "__main__":
    main()
