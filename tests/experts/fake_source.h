// SPDX-License-Identifier: Apache-2.0
// An in-memory ExpertSource for cache/loader tests: each block's bytes are a function of
// (layer, expert), every read is counted, and reads can be made to fail, to block or to take
// time; Verify runs a hook.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "experts/expert_source.h"

namespace moe::testing {

class FakeSource final : public ExpertSource {
 public:
  FakeSource(int64_t n_layers, int64_t n_experts, uint64_t hidden = 16, uint64_t inter = 8)
      : n_layers_(n_layers), n_experts_(n_experts),
        reads_(static_cast<size_t>(n_layers * n_experts)) {
    g_.hidden = hidden;
    g_.intermediate = inter;
    g_.type = kernels::WeightType::kF32;
  }
  const ExpertGeometry& geometry() const override { return g_; }
  int64_t n_layers() const override { return n_layers_; }
  bool has_experts(int64_t) const override { return true; }
  int64_t n_experts() const override { return n_experts_; }
  std::string format() const override { return "fake"; }

  static uint8_t ByteOf(int64_t layer, int64_t expert, uint64_t i) {
    return static_cast<uint8_t>(layer * 31 + expert * 7 + i * 13);
  }

  // Counts the reads moving bytes now (and the most ever at once); sleeps raw_delay_ms.
  Status ReadRaw(int64_t layer, int64_t expert, void* dst) const override {
    raw_started_.fetch_add(1);
    const int now = raw_now_.fetch_add(1) + 1;
    for (int m = raw_max_.load(); now > m && !raw_max_.compare_exchange_weak(m, now);) {
    }
    if (raw_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(raw_delay_ms_));
    Status st = Fill(layer, expert, dst);
    raw_now_.fetch_sub(1);
    return st;
  }
  Status Verify(int64_t layer, int64_t expert, const void*) const override {
    if (verify_hook_) verify_hook_(layer, expert);
    return Status::Ok();
  }
  // Runs on the I/O thread inside Verify (set before any read starts).
  void SetVerifyHook(std::function<void(int64_t layer, int64_t expert)> f) {
    verify_hook_ = std::move(f);
  }
  void SetRawDelayMs(int ms) { raw_delay_ms_ = ms; }
  int raw_started() const { return raw_started_.load(); }
  int raw_max() const { return raw_max_.load(); }

  // The block's bytes into dst (counted as a read; honours Fail and Block).
  Status Fill(int64_t layer, int64_t expert, void* dst) const {
    reads_[static_cast<size_t>(layer * n_experts_ + expert)].fetch_add(1);
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !blocked_; });
      if (fail_.count({layer, expert})) {
        std::memset(dst, 0xEE, g_.block_bytes());  // garbage that must never be used
        return Error(StatusCode::kIoError, "fake: layer {} expert {}: injected EIO", layer,
                     expert);
      }
    }
    auto* out = static_cast<uint8_t*>(dst);
    for (uint64_t i = 0; i < g_.block_bytes(); ++i) out[i] = ByteOf(layer, expert, i);
    return Status::Ok();
  }

  int reads(int64_t layer, int64_t expert) const {
    return reads_[static_cast<size_t>(layer * n_experts_ + expert)].load();
  }
  int total_reads() const {
    int n = 0;
    for (const auto& r : reads_) n += r.load();
    return n;
  }
  void Fail(int64_t layer, int64_t expert, bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    if (on) fail_.insert({layer, expert}); else fail_.erase({layer, expert});
  }
  void Block(bool on) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocked_ = on;
    }
    cv_.notify_all();
  }

 private:
  int64_t n_layers_, n_experts_;
  ExpertGeometry g_;
  mutable std::vector<std::atomic<int>> reads_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::set<std::pair<int64_t, int64_t>> fail_;
  bool blocked_ = false;
  std::function<void(int64_t, int64_t)> verify_hook_;
  int raw_delay_ms_ = 0;
  mutable std::atomic<int> raw_started_{0}, raw_now_{0}, raw_max_{0};
};

}  // namespace moe::testing
