// SPDX-License-Identifier: Apache-2.0
// Option groups shared by the commands that run a model: model/engine, threads and context,
// lossy routing knobs, sampling.
#pragma once

#include <string>

#include "flags.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moe::app {

struct ModelFlags {
  EngineOptions engine;
  int64_t threads = 0;  // 0 = all CPUs
  SessionOptions session;
  std::string stats_json;  // --stats-json FILE: expert cache statistics (docs/expert_cache.md)
  // No --lm-head-shadow given: `generate` and `chat` then turn the shadow on for greedy and
  // top-k decoding (UseLmHeadShadowIfTopK); every other command leaves it off.
  bool lm_head_shadow_default = true;

  void Register(Flags& f);  // includes RegisterExpertFlags
  // Fills engine.model_dir with DefaultModelDir() when --model was not given.
  Status ResolveModelDir();
  void RegisterExpertFlags(Flags& f);
  // Warns on stderr when a lossy knob is on.
  void WarnIfLossy() const;
  size_t n_threads() const;
  // The default for greedy and top-k decoding (each step needs only the k largest logits): the
  // lm_head shadow on, unless --lm-head-shadow was given or lm_head is dense-quantized (nothing
  // to gain).
  void UseLmHeadShadowIfTopK(const SamplingParams& p);
  // After a run: prints the expert cache summary on stderr when `print` and writes --stats-json.
  // Nothing to report in all-resident mode.
  Status ReportExpertStats(const Engine& engine, bool print) const;
};

// The bundled reference model: $MOESTREAM_MODEL, else models/qwen3-moe-ref next to the binary's
// folder (build/moestream → models/…), else in the source tree the binary was built from.
std::string DefaultModelDir();

struct SamplingFlags {
  SamplingParams params;
  int64_t seed = 0;
  void Register(Flags& f);
};

}  // namespace moe::app
