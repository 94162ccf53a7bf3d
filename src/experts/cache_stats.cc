// SPDX-License-Identifier: Apache-2.0
// Cache statistics formatting, byte-size flags and the `auto` budget.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "experts/expert_cache.h"

namespace moe {
namespace {

double Ratio(uint64_t a, uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; }

std::string LayerJson(const LayerCacheStats& s) {
  return fmt::format(
      "{{\"hits\":{},\"joins\":{},\"misses\":{},\"evictions\":{},\"bytes_read\":{},"
      "\"read_ms\":{:.3f},\"read_gb_per_s\":{:.3f},\"wait_ms\":{:.3f},\"prefetch_issued\":{},"
      "\"prefetch_used\":{},\"prefetch_cancelled\":{},\"prefetch_skipped\":{},"
      "\"prefetch_precision\":{:.4f},\"prefetch_recall\":{:.4f},\"fill_issued\":{},"
      "\"fill_used\":{}}}",
      s.hits, s.joins, s.misses, s.evictions, s.bytes_read, s.read_ns / 1e6,
      Ratio(s.bytes_read, s.read_ns), s.wait_ns / 1e6, s.prefetch_issued, s.prefetch_used,
      s.prefetch_cancelled, s.prefetch_skipped, Ratio(s.predicted_and_actual, s.predicted),
      Ratio(s.predicted_and_actual, s.actual), s.fill_issued, s.fill_used);
}

// Every counter of LayerCacheStats, for Add and Sub.
constexpr uint64_t LayerCacheStats::*kCounters[] = {
    &LayerCacheStats::hits,           &LayerCacheStats::joins,
    &LayerCacheStats::misses,         &LayerCacheStats::evictions,
    &LayerCacheStats::bytes_read,     &LayerCacheStats::read_ns,
    &LayerCacheStats::wait_ns,        &LayerCacheStats::prefetch_issued,
    &LayerCacheStats::prefetch_used,  &LayerCacheStats::prefetch_cancelled,
    &LayerCacheStats::prefetch_skipped,
    &LayerCacheStats::predicted,      &LayerCacheStats::actual,
    &LayerCacheStats::predicted_and_actual,
    &LayerCacheStats::fill_issued,    &LayerCacheStats::fill_used};
static_assert(sizeof(kCounters) / sizeof(kCounters[0]) * sizeof(uint64_t) ==
                  sizeof(LayerCacheStats),
              "a LayerCacheStats counter is missing from kCounters");

}  // namespace

void LayerCacheStats::Add(const LayerCacheStats& o) {
  for (auto f : kCounters) this->*f += o.*f;
}

void LayerCacheStats::Sub(const LayerCacheStats& o) {
  for (auto f : kCounters) this->*f -= o.*f;
}

std::string CacheStats::Summary() const {
  const LayerCacheStats& t = total;
  const uint64_t req = t.hits + t.joins + t.misses;
  std::string s = fmt::format(
      "expert cache: {} slots × {} B = {:.1f} MiB; requests {}, hits {} ({:.1f}%), misses {}, "
      "joined {}, evictions {}, read {:.1f} MiB at {:.2f} GB/s per I/O thread, compute waited "
      "{:.1f} ms, read errors {}",
      n_slots, slot_bytes, n_slots * slot_bytes / 1048576.0, req, t.hits,
      100.0 * Ratio(t.hits, req), t.misses, t.joins, t.evictions, t.bytes_read / 1048576.0,
      Ratio(t.bytes_read, t.read_ns), t.wait_ns / 1e6, read_errors);
  if (t.predicted > 0) {
    s += fmt::format("; prefetch issued {}, used {}, cancelled {}, skipped {}, lookahead "
                     "precision {:.1f}% recall {:.1f}%",
                     t.prefetch_issued, t.prefetch_used, t.prefetch_cancelled, t.prefetch_skipped,
                     100.0 * Ratio(t.predicted_and_actual, t.predicted),
                     100.0 * Ratio(t.predicted_and_actual, t.actual));
  }
  if (t.fill_issued > 0) {
    s += fmt::format("; fill read {}, used {}", t.fill_issued, t.fill_used);
  }
  return s;
}

std::string CacheStats::Json() const {
  std::string s = fmt::format(
      "{{\"budget_bytes\":{},\"slot_bytes\":{},\"n_slots\":{},\"read_errors\":{},\"total\":{},"
      "\"layers\":[",
      budget_bytes, slot_bytes, n_slots, read_errors, LayerJson(total));
  for (size_t i = 0; i < layers.size(); ++i) s += (i ? "," : "") + LayerJson(layers[i]);
  return s + "]}\n";
}

Result<uint64_t> ParseByteSize(const std::string& s, const char* flag) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > (~0ull - 9) / 10) return Error(StatusCode::kUsage, "--{} {}: too large", flag, s);
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  if (i == 0) {
    return Error(StatusCode::kUsage, "--{} '{}': expected a size like 512M, 4G or auto", flag, s);
  }
  int shift = 0;
  if (i < s.size()) {
    const char u = static_cast<char>(s[i] | 0x20);
    shift = u == 'k' ? 10 : u == 'm' ? 20 : u == 'g' ? 30 : u == 't' ? 40 : -1;
    const std::string rest = s.substr(i + 1);
    if (shift < 0 || !(rest.empty() || rest == "B" || rest == "iB" || rest == "b")) {
      return Error(StatusCode::kUsage, "--{} '{}': unknown unit (use K, M, G or T)", flag, s);
    }
  }
  if (shift && v > (~0ull >> shift)) return Error(StatusCode::kUsage, "--{} {}: too large", flag, s);
  return v << shift;
}

uint64_t PeakRssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  unsigned long long kb = 0;
  while (std::getline(f, line)) {
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) return kb * 1024;
  }
  return 0;
}

Result<uint64_t> MemAvailableBytes() {
  // /proc files report size 0, so read line by line rather than by stat size.
  std::ifstream f("/proc/meminfo");
  if (!f.is_open()) {
    const int err = errno;
    return Error(StatusCode::kResourceExhausted, "/proc/meminfo: cannot open: {}{}",
                 std::strerror(err), err == EMFILE || err == ENFILE ? " (raise ulimit -n)" : "");
  }
  std::string line;
  unsigned long long kb = 0;
  bool found = false;
  while (!found && std::getline(f, line)) {
    found = std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1;
  }
  if (!found) {
    return Error(StatusCode::kResourceExhausted, "/proc/meminfo: no MemAvailable line");
  }
  return static_cast<uint64_t>(kb) * 1024;
}

Result<uint64_t> AutoCacheBudget(uint64_t dense_bytes, uint64_t kv_bytes) {
  MOE_ASSIGN_OR_RETURN(uint64_t avail, MemAvailableBytes());
  // MemAvailable is measured after the dense weights were loaded only when Engine::Open calls
  // this after binding; subtract them anyway when the caller passes them (conservative).
  if (avail <= dense_bytes + kv_bytes) {
    return Error(StatusCode::kResourceExhausted,
                 "--expert-cache auto: MemAvailable {} bytes leaves nothing after dense weights "
                 "({}) and KV cache ({})", avail, dense_bytes, kv_bytes);
  }
  // 70%: the rest stays for the page cache, the OS and other processes.
  return (avail - dense_bytes - kv_bytes) / 10 * 7;
}

}  // namespace moe
