// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>

namespace moe {

void MergeTable::Build(const std::vector<std::pair<uint64_t, Value>>& entries) {
  size_t capacity = 16;
  while (capacity < entries.size() * 2) capacity *= 2;
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
  for (const auto& [key, value] : entries) {
    for (size_t i = Hash(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty || slots_[i].key == key) {
        slots_[i] = Slot{key, value};
        break;
      }
    }
  }
}

BpeModel::BpeModel(const int32_t (&byte_ids)[256], MergeTable merges) : merges_(std::move(merges)) {
  std::copy(std::begin(byte_ids), std::end(byte_ids), byte_ids_);
}

namespace {
// Below this many symbols the quadratic scan beats a heap.
constexpr size_t kSmallWord = 48;
}  // namespace

void BpeModel::EncodeWord(std::string_view word, BpeScratch* s, std::vector<int32_t>* out) const {
  s->ids.clear();
  for (char c : word) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id >= 0) s->ids.push_back(id);
  }
  if (s->ids.size() <= 1) {
    out->insert(out->end(), s->ids.begin(), s->ids.end());
    return;
  }
  if (s->ids.size() <= kSmallWord) {
    MergeSmall(s, out);
  } else {
    MergeLarge(s, out);
  }
}

// Repeatedly merges the lowest-rank adjacent pair, leftmost on ties (O(n^2), small n).
void BpeModel::MergeSmall(BpeScratch* s, std::vector<int32_t>* out) const {
  std::vector<int32_t>& ids = s->ids;
  std::vector<int32_t>& ranks = s->ranks;  // ranks[i]: rank of (ids[i], ids[i+1]) or INT32_MAX
  ranks.resize(ids.size() - 1);
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const int32_t r = merges_.Find(ids[i], ids[i + 1]).rank;
    ranks[i] = r < 0 ? INT32_MAX : r;
  }
  while (!ranks.empty()) {
    const auto best = std::min_element(ranks.begin(), ranks.end());  // first minimum
    if (*best == INT32_MAX) break;
    const size_t i = static_cast<size_t>(best - ranks.begin());
    ids[i] = merges_.Find(ids[i], ids[i + 1]).id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(i));
    auto rank_of = [&](size_t k) {
      const int32_t r = merges_.Find(ids[k], ids[k + 1]).rank;
      return r < 0 ? INT32_MAX : r;
    };
    if (i > 0) ranks[i - 1] = rank_of(i - 1);
    if (i < ranks.size()) ranks[i] = rank_of(i);
  }
  out->insert(out->end(), ids.begin(), ids.end());
}

// HF's Word::merge_all: a min-heap of (rank, pos) over a linked list of symbols; stale
// entries are recognised by re-looking-up the pair. O(n log n).
void BpeModel::MergeLarge(BpeScratch* s, std::vector<int32_t>* out) const {
  const int32_t n = static_cast<int32_t>(s->ids.size());
  s->symbols.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) s->symbols[i] = {s->ids[i], i - 1, i + 1 < n ? i + 1 : -1};
  auto greater = [](const BpeScratch::Merge& a, const BpeScratch::Merge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::vector<BpeScratch::Merge>& heap = s->heap;
  heap.clear();
  auto push_pair = [&](int32_t pos) {
    const int32_t next = s->symbols[pos].next;
    if (next < 0) return;
    const MergeTable::Value v = merges_.Find(s->symbols[pos].id, s->symbols[next].id);
    if (v.rank < 0) return;
    heap.push_back({v.rank, pos, v.id});
    std::push_heap(heap.begin(), heap.end(), greater);
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    const BpeScratch::Merge top = heap.back();
    heap.pop_back();
    BpeScratch::Symbol& left = s->symbols[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const MergeTable::Value v = merges_.Find(left.id, s->symbols[right_pos].id);
    if (v.rank < 0 || v.id != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    left.next = s->symbols[right_pos].next;
    s->symbols[right_pos].id = -1;  // dead
    if (left.next >= 0) s->symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = s->symbols[i].next) out->push_back(s->symbols[i].id);
}

}  // namespace moe
