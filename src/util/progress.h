// SPDX-License-Identifier: Apache-2.0
// A one-line progress meter (bytes done / total, MB/s, ETA) redrawn in place with '\r',
// at most every 200 ms, on a caller-given stream. Used by convert and the dense-weight load.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace moe {

class ProgressMeter {
 public:
  // out == nullptr: silent. label is printed before the bar.
  ProgressMeter(FILE* out, std::string label, uint64_t total_bytes);

  // Redraws when 200 ms passed since the last draw.
  void Update(uint64_t done_bytes);
  // Draws the final state and ends the line (once).
  void Finish();

 private:
  void Draw(uint64_t done_bytes, bool final);

  using Clock = std::chrono::steady_clock;
  FILE* out_;
  std::string label_;
  uint64_t total_;
  Clock::time_point t0_, last_;
  bool finished_ = false;
};

}  // namespace moe
