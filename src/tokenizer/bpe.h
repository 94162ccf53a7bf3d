// SPDX-License-Identifier: Apache-2.0
// Byte-level BPE model: merges of token-id pairs by rank (HF tokenizers models/bpe, no dropout,
// no unk, no byte fallback). Words are byte strings; each byte starts as the id of its
// byte-level character.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/status.h"

namespace moe {

// Open-addressing map (id_a, id_b) -> (rank, merged id). Immutable after Build.
class MergeTable {
 public:
  struct Value {
    int32_t rank = -1;
    int32_t id = -1;
  };
  // Later duplicates of a pair override earlier ones, like HF's HashMap collect.
  void Build(const std::vector<std::pair<uint64_t, Value>>& entries);
  // rank == -1 if the pair has no merge.
  Value Find(int32_t a, int32_t b) const {
    const uint64_t key = Key(a, b);
    for (size_t i = Hash(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return s.value;
      if (s.key == kEmpty) return Value{};
    }
  }
  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    Value value;
  };
  size_t Hash(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  std::vector<Slot> slots_ = std::vector<Slot>(16);
  size_t mask_ = 15;
  int shift_ = 60;
};

// Scratch reused across words of one encode call (no allocation per word once warm).
struct BpeScratch {
  std::vector<int32_t> ids;
  std::vector<int32_t> ranks;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> symbols;
  std::vector<uint64_t> heap;  // (rank << 32 | position) min-heap
  // Radix heap buckets for monotone merge lists (see BpeModel::monotone_).
  std::vector<uint64_t> buckets[65];
};

// Thread-compatible data; Encode is const and thread-safe given separate scratch.
class BpeModel {
 public:
  // byte_ids[b]: id of the byte-level character of byte b, or -1 (that byte is then dropped,
  // as HF does without unk/byte_fallback).
  // `monotone`: every merge that uses a token has a higher rank than every merge producing
  // it (true of trained merge lists). Then the ranks BPE pops never decrease, and long words
  // use a radix heap (near-linear, cache friendly) instead of a binary heap.
  BpeModel(const int32_t (&byte_ids)[256], MergeTable merges, bool monotone);
  BpeModel() = default;

  // Appends the ids of `word` (raw bytes of one pre-tokenized piece) to `out`.
  void EncodeWord(std::string_view word, BpeScratch* scratch, std::vector<int32_t>* out) const;

 private:
  void MergeSmall(BpeScratch* s, std::vector<int32_t>* out) const;
  template <typename Queue>
  void MergeLarge(BpeScratch* s, Queue& queue, std::vector<int32_t>* out) const;

  int32_t byte_ids_[256] = {};
  bool monotone_ = false;
  MergeTable merges_;
};

}  // namespace moe
