// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the streaming-expert tests: fixture paths and a logits runner.
#pragma once

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/session.h"
#include "util/thread_pool.h"

namespace moe::streaming {

inline std::string ModelDir(const std::string& name) {
  return std::string(MOE_SOURCE_DIR) + "/tests/data/models/" + name;
}

inline std::vector<int32_t> Prompt(const std::string& dir) {
  std::ifstream f(dir + "/reference/meta.json");
  return nlohmann::json::parse(f)["prompt"].get<std::vector<int32_t>>();
}

inline std::vector<float> ReadF32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  std::vector<float> v(s.size() / 4);
  std::memcpy(v.data(), s.data(), v.size() * 4);
  return v;
}

// Logits of every prompt position: prefill in chunks of `batch`, or one token at a time.
inline std::vector<float> RunLogits(const Engine& e, const std::vector<int32_t>& prompt,
                                    int64_t batch, bool step) {
  ThreadPool pool(2);
  SessionOptions so;
  so.max_batch = batch;
  Session s(e, pool, so);
  const size_t V = static_cast<size_t>(e.config().vocab_size);
  std::vector<float> out(prompt.size() * V);
  if (!step) {
    Status st = s.Forward(prompt, LogitsMode::kAll, out.data());
    if (!st.ok()) ADD_FAILURE() << st.message();
    return out;
  }
  for (size_t p = 0; p < prompt.size(); ++p) {
    Status st = s.Forward({&prompt[p], 1}, LogitsMode::kLast, &out[p * V]);
    if (!st.ok()) ADD_FAILURE() << st.message();
  }
  return out;
}

}  // namespace moe::streaming
