#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One table row (stdout) for a `moestream bench --measure-memory` JSON object on stdin."""
import json
import sys

j = json.load(sys.stdin)
print(f"{j['model_arg']:32} {j['expert_dtype']:5} decode {j['decode_tok_s']:9.2f} tok/s  "
      f"weights+KV {(j['weight_bytes_per_decode_token'] + j.get('kv_bytes_per_decode_token', 0)) / 1e6:8.2f} MB/tok  "
      f"{j['memory_gb_s']:6.2f} GB/s of {j['measured_memory_gb_s']:6.2f} measured = "
      f"{100 * j['decode_share_of_memory_roofline']:5.1f}%  prefill {j['prefill_tok_s']:8.1f} tok/s"
      + (f"  per token {100 * j['decode_share_of_memory_roofline_per_token']:5.1f}% "
         f"(probes {j['memory_probe_per_token_gb_s']:.1f} GB/s)"
         if 'decode_share_of_memory_roofline_per_token' in j else ""))
