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

  void Register(Flags& f);
  // Warns on stderr when a lossy knob is on.
  void WarnIfLossy() const;
  size_t n_threads() const;
};

struct SamplingFlags {
  SamplingParams params;
  int64_t seed = 0;
  void Register(Flags& f);
};

}  // namespace moe::app
