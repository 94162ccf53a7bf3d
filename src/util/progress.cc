// SPDX-License-Identifier: Apache-2.0
#include "util/progress.h"

#include <utility>

namespace moe {

ProgressMeter::ProgressMeter(FILE* out, std::string label, uint64_t total_bytes)
    : out_(out), label_(std::move(label)), total_(total_bytes), t0_(Clock::now()), last_(t0_) {}

void ProgressMeter::Update(uint64_t done_bytes) {
  if (!out_) return;
  const auto now = Clock::now();
  if (now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  Draw(done_bytes, false);
}

void ProgressMeter::Finish() {
  if (!out_ || finished_) return;
  finished_ = true;
  Draw(total_, true);
}

void ProgressMeter::Draw(uint64_t done, bool final) {
  const double s = std::chrono::duration<double>(Clock::now() - t0_).count();
  const double rate = s > 0 ? static_cast<double>(done) / s : 0;
  const double eta = rate > 0 && total_ > done ? static_cast<double>(total_ - done) / rate : 0;
  constexpr int kWidth = 30;
  const int fill = total_ ? static_cast<int>(kWidth * static_cast<double>(done) / total_) : kWidth;
  std::fprintf(out_, "\r%s [%.*s%*s] %.1f/%.1f MiB %.1f MB/s ETA %.0fs%s", label_.c_str(), fill,
               "##############################", kWidth - fill, "", done / 1048576.0,
               total_ / 1048576.0, rate / 1e6, eta, final ? "\n" : "");
  std::fflush(out_);
}

}  // namespace moe
