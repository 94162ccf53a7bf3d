#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads one `moestream bench --measure-memory` JSON object on stdin; adds the roofline
min(memory-bound, disk-bound at the measured hit rate) for a device bandwidth (GB/s), prints
the extended JSON on stdout and one table row on stderr.

Also the no-prediction bound: without knowing a layer's experts before its router runs, a
layer's reads can overlap only that layer's expert compute; the dense work (attention, norms,
router, lm_head, KV reads) waits for them. Per token
  T = (dense + KV bytes) / memory + max(expert bytes / memory, bytes read / device),
which with every layer alike is the sum of the per-layer bounds. The roofline assumes the
reads overlap all compute, which only a working prediction of the next layer's experts allows.
The lookahead bound: the best a perfect one-layer-ahead prediction allows. The next token's
first layer is known only after lm_head's argmax, so the head (embedding row, final norm,
lm_head) and the first MoE layer run as without prediction; the other layers' reads overlap
all compute:
  T = head / memory + bound of one layer without prediction
      + (L − 1) · max((layer dense + experts) / memory, layer reads / device).
With several repeats the share is the median of per-repeat shares, each repeat against the
memory probes taken around it (the other figures use the medians); in a run that read nothing,
with --probe-each-token, the median of per-token shares against the probes between tokens. All three count the bytes a
token needs: bytes read minus those a prefetch read and nobody used (--prefetch's wrong
guesses), so speculation cannot lower its own bar, and minus every read of the background fill
(--cache-fill: its blocks used later are hits, its reads are not counted), which can only raise
the bar.
  moestream bench ... --measure-memory | roofline.py SOURCE DEVICE_GB_S"""
import json
import sys


def no_prediction_time(dense, expert, reads, mem_bps, dev_bps):
    """Seconds for dense + expert bytes from memory when reads overlap only the expert part."""
    return dense / mem_bps + max(expert / mem_bps, reads / dev_bps)


def main():
    j = json.load(sys.stdin)
    src, dev = sys.argv[1], float(sys.argv[2])
    mem = j["measured_memory_gb_s"] * 1e9 / j["weight_bytes_per_decode_token"]
    per_tok = (j["bytes_read_per_token"] - j.get("prefetch_unused_bytes_per_token", 0) -
               j.get("fill_bytes_per_token", 0))
    disk = dev * 1e9 / per_tok if per_tok > 0 else float("inf")
    roof = min(mem, disk)
    share = j["decode_tok_s"] / roof if roof > 0 else 0
    # With several repeats (--repeat N), each repeat against its own roofline: its decode rate
    # over min(memory-bound at the larger probe around it, disk-bound), then the median. This
    # host's memory switches rate within seconds (session 21: a run at the fast rate between two
    # probes at the slow one), which a probe for the whole run cannot follow.
    reps = list(zip(j.get("decode_tok_s_per_repeat", []),
                    j.get("memory_probe_per_repeat_gb_s", [])))
    share_whole_run = share
    # --probe-each-token: in a run that read nothing (all cached), each token against the quick
    # probes on either side of it (where reads stream, a probe's pause lets them catch up).
    per_token = j.get("decode_share_of_memory_roofline_per_token")
    if per_token is not None and per_tok == 0:
        share = per_token
    elif len(reps) > 1:
        shares = sorted(t / min(p * 1e9 / j["weight_bytes_per_decode_token"], disk)
                        for t, p in reps if p > 0)
        if shares:
            n = len(shares)
            share = shares[n // 2] if n % 2 else (shares[n // 2 - 1] + shares[n // 2]) / 2
    mem_bps = j["measured_memory_gb_s"] * 1e9
    expert = j.get("expert_bytes_per_decode_token", 0)
    dense = j["weight_bytes_per_decode_token"] - expert + j.get("kv_bytes_per_decode_token", 0)
    t_np = no_prediction_time(dense, expert, per_tok, mem_bps, dev * 1e9)
    no_pred = 1 / t_np if t_np > 0 else 0
    n_l = j.get("moe_layers", 0)
    la = 0
    if n_l > 0 and "head_bytes_per_decode_token" in j:
        head = j["head_bytes_per_decode_token"]
        ld, le, lr = (dense - head) / n_l, expert / n_l, per_tok / n_l
        t_la = (head / mem_bps + no_prediction_time(ld, le, lr, mem_bps, dev * 1e9) +
                (n_l - 1) * max((ld + le) / mem_bps, lr / (dev * 1e9)))
        la = 1 / t_la if t_la > 0 else 0
    share_np = j["decode_tok_s"] / no_pred if no_pred > 0 else 0
    pf_disk = j.get("prefill_disk_gb_s", 0)
    # The read path while reading (bytes over the time ≥ 1 read was in flight), vs the device.
    pf_path = j.get("prefill_read_path_gb_s", 0)
    j.update(source=src, device_gb_s=dev, prefill_share_of_device=round(pf_disk / dev, 4),
             prefill_read_path_share_of_device=round(pf_path / dev, 4),
             roofline_memory_tok_s=round(mem, 3),
             roofline_disk_tok_s=None if disk == float("inf") else round(disk, 3),
             roofline_tok_s=round(roof, 3), share_of_roofline=round(share, 4),
             share_of_roofline_whole_run=round(share_whole_run, 4),
             no_prediction_bound_tok_s=round(no_pred, 3),
             share_of_no_prediction_bound=round(share_np, 4),
             lookahead_bound_tok_s=round(la, 3),
             share_of_lookahead_bound=round(j["decode_tok_s"] / la, 4) if la > 0 else None)
    print(json.dumps(j))
    budget = j["expert_cache_bytes"] / 2**30
    print(f"{src:8} {budget:6.2f}G {j['io']:8} decode {j['decode_tok_s']:8.3f} tok/s  roofline "
          f"{roof:8.3f} ({100 * share:5.1f}%)  no-prediction bound {no_pred:7.3f} "
          f"({100 * share_np:5.1f}%)  lookahead bound {la:7.3f} "
          f"({100 * j['decode_tok_s'] / la if la > 0 else 0:5.1f}%)  hit {j['cache_hit_rate']:.3f}  disk "
          f"{j['disk_gb_s']:.2f}/{dev:.2f} GB/s  io-wait {j['io_wait_share']:.2f}  prefill "
          f"{j['prefill_tok_s']:.2f} tok/s (disk {pf_disk:.2f} GB/s = {100 * pf_disk / dev:.0f}% of "
          f"device; read path {pf_path:.2f} GB/s = {100 * pf_path / dev:.0f}%)  "
          f"mem {j['measured_memory_gb_s']:.1f} GB/s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
