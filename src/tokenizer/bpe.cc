// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>
#include <functional>

#include "util/check.h"

namespace moe {

void MergeTable::Build(const std::vector<std::pair<uint64_t, Value>>& entries) {
  // Load factor <= 2/3: small enough for short probes, and the table (16 B/slot) stays
  // half the size of a 1/2-loaded one, which matters because lookups are cache misses.
  size_t capacity = 16;
  while (capacity * 2 < entries.size() * 3) capacity *= 2;
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

BpeModel::BpeModel(const int32_t (&byte_ids)[256], MergeTable merges, bool monotone)
    : monotone_(monotone), merges_(std::move(merges)) {
  std::copy(std::begin(byte_ids), std::end(byte_ids), byte_ids_);
}

namespace {
// Below this many symbols the quadratic scan beats a heap.
constexpr size_t kSmallWord = 48;

// Min-queue of uint64 keys over a binary heap.
class BinaryQueue {
 public:
  explicit BinaryQueue(std::vector<uint64_t>* heap) : heap_(*heap) { heap_.clear(); }
  void Push(uint64_t x) {
    heap_.push_back(x);
    std::push_heap(heap_.begin(), heap_.end(), std::greater<uint64_t>());
  }
  void Build() { std::make_heap(heap_.begin(), heap_.end(), std::greater<uint64_t>()); }
  void PushUnordered(uint64_t x) { heap_.push_back(x); }
  bool Empty() const { return heap_.empty(); }
  uint64_t Pop() {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<uint64_t>());
    const uint64_t x = heap_.back();
    heap_.pop_back();
    return x;
  }

 private:
  std::vector<uint64_t>& heap_;
};

// Radix heap: a monotone min-queue (every pushed key >= the last popped key). Each key moves
// between buckets O(log range) times, with sequential memory access.
class RadixQueue {
 public:
  explicit RadixQueue(std::vector<uint64_t> (&buckets)[65]) : buckets_(buckets) {
    for (auto& b : buckets_) b.clear();
  }
  void Push(uint64_t x) {
    MOE_DCHECK(x >= last_);
    buckets_[Bucket(x)].push_back(x);
    ++size_;
  }
  void PushUnordered(uint64_t x) { Push(x); }
  void Build() {}
  bool Empty() const { return size_ == 0; }
  uint64_t Pop() {
    if (buckets_[0].empty()) {
      int i = 1;
      while (buckets_[i].empty()) ++i;
      last_ = *std::min_element(buckets_[i].begin(), buckets_[i].end());
      for (uint64_t x : buckets_[i]) buckets_[Bucket(x)].push_back(x);
      buckets_[i].clear();
    }
    const uint64_t x = buckets_[0].back();
    buckets_[0].pop_back();
    --size_;
    return x;
  }

 private:
  int Bucket(uint64_t x) const { return x == last_ ? 0 : 64 - std::countl_zero(x ^ last_); }
  std::vector<uint64_t> (&buckets_)[65];
  uint64_t last_ = 0;
  size_t size_ = 0;
};

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
  } else if (monotone_) {
    RadixQueue queue(s->buckets);
    MergeLarge(s, queue, out);
  } else {
    BinaryQueue queue(&s->heap);
    MergeLarge(s, queue, out);
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

// HF's Word::merge_all: a min-heap of (rank, pos) over a linked list of symbols. O(n log n).
// An entry is stale when the pair now at `pos` has another rank; a pair's rank identifies its
// merge (one merge per rank), so the rank alone validates the entry.
template <typename Queue>
void BpeModel::MergeLarge(BpeScratch* s, Queue& queue, std::vector<int32_t>* out) const {
  const int32_t n = static_cast<int32_t>(s->ids.size());
  s->symbols.resize(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) s->symbols[i] = {s->ids[i], i - 1, i + 1 < n ? i + 1 : -1};
  auto entry = [](int32_t rank, int32_t pos) {
    return (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(pos);
  };
  for (int32_t i = 0; i + 1 < n; ++i) {
    const int32_t r = merges_.Find(s->ids[i], s->ids[i + 1]).rank;
    if (r >= 0) queue.PushUnordered(entry(r, i));
  }
  queue.Build();
  auto push_pair = [&](int32_t pos) {
    const int32_t next = s->symbols[pos].next;
    if (next < 0) return;
    const int32_t r = merges_.Find(s->symbols[pos].id, s->symbols[next].id).rank;
    if (r >= 0) queue.Push(entry(r, pos));
  };
  while (!queue.Empty()) {
    const uint64_t top = queue.Pop();
    const int32_t rank = static_cast<int32_t>(top >> 32);
    const int32_t pos = static_cast<int32_t>(top & 0xFFFFFFFFu);
    BpeScratch::Symbol& left = s->symbols[pos];
    if (left.id < 0 || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const MergeTable::Value v = merges_.Find(left.id, s->symbols[right_pos].id);
    if (v.rank != rank) continue;  // stale entry
    left.id = v.id;
    left.next = s->symbols[right_pos].next;
    s->symbols[right_pos].id = -1;  // dead
    if (left.next >= 0) s->symbols[left.next].prev = pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(pos);
  }
  for (int32_t i = 0; i >= 0; i = s->symbols[i].next) out->push_back(s->symbols[i].id);
}

}  // namespace moe
