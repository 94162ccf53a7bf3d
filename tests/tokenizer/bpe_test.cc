// SPDX-License-Identifier: Apache-2.0
// BpeModel against the textbook definition of BPE encoding (spec §6.2 step 5: repeatedly merge
// the adjacent pair with the lowest rank, leftmost on ties), written naively here, on random
// merge tables: short words (quadratic path), long words with a monotone table (radix heap)
// and with shuffled ranks (binary heap).
#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

namespace moe {
namespace {

struct RandomBpe {
  std::map<std::pair<int32_t, int32_t>, std::pair<int32_t, int32_t>> merges;  // -> (rank, id)
};

RandomBpe MakeMerges(std::mt19937& rng, int n_merges, bool shuffle_ranks) {
  RandomBpe r;
  int32_t next_id = 4;  // ids 0..3 are the bytes 'a'..'d'
  std::vector<int32_t> ranks(n_merges);
  for (int i = 0; i < n_merges; ++i) ranks[i] = i;
  if (shuffle_ranks) std::shuffle(ranks.begin(), ranks.end(), rng);
  while (static_cast<int>(r.merges.size()) < n_merges) {
    std::uniform_int_distribution<int32_t> pick(0, next_id - 1);
    const auto pair = std::make_pair(pick(rng), pick(rng));
    if (r.merges.count(pair)) continue;
    r.merges[pair] = {ranks[r.merges.size()], next_id++};
  }
  return r;
}

std::vector<int32_t> NaiveBpe(const RandomBpe& r, const std::string& word) {
  std::vector<int32_t> ids;
  for (char c : word) ids.push_back(c - 'a');
  while (ids.size() > 1) {
    int32_t best_rank = INT32_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      auto it = r.merges.find({ids[i], ids[i + 1]});
      if (it != r.merges.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best = i;
      }
    }
    if (best_rank == INT32_MAX) break;
    ids[best] = r.merges.at({ids[best], ids[best + 1]}).second;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return ids;
}

void CheckAgainstNaive(bool monotone_table) {
  std::mt19937 rng(monotone_table ? 1 : 2);
  for (int table = 0; table < 20; ++table) {
    const RandomBpe r = MakeMerges(rng, 60, !monotone_table);
    std::vector<std::pair<uint64_t, MergeTable::Value>> entries;
    for (const auto& [pair, v] : r.merges) {
      entries.push_back({MergeTable::Key(pair.first, pair.second), {v.first, v.second}});
    }
    MergeTable table_;
    table_.Build(entries);
    int32_t byte_ids[256];
    std::fill(std::begin(byte_ids), std::end(byte_ids), -1);
    for (int b = 0; b < 4; ++b) byte_ids['a' + b] = b;
    const BpeModel model(byte_ids, std::move(table_), monotone_table);
    BpeScratch scratch;
    for (int w = 0; w < 50; ++w) {
      std::uniform_int_distribution<int> len(1, w < 25 ? 40 : 400), letter(0, 3);
      std::string word;
      for (int i = len(rng); i > 0; --i) word.push_back(static_cast<char>('a' + letter(rng)));
      std::vector<int32_t> got;
      model.EncodeWord(word, &scratch, &got);
      ASSERT_EQ(got, NaiveBpe(r, word)) << "table " << table << " word " << word;
    }
  }
}

TEST(BpeTest, MonotoneTableMatchesNaive) { CheckAgainstNaive(true); }
TEST(BpeTest, ShuffledRanksMatchNaive) { CheckAgainstNaive(false); }

TEST(BpeTest, BytesWithoutVocabEntryAreDropped) {
  int32_t byte_ids[256];
  std::fill(std::begin(byte_ids), std::end(byte_ids), -1);
  byte_ids['a'] = 0;
  const BpeModel model(byte_ids, MergeTable(), true);
  BpeScratch scratch;
  std::vector<int32_t> got;
  model.EncodeWord("axa", &scratch, &got);
  EXPECT_EQ(got, (std::vector<int32_t>{0, 0}));
}

}  // namespace
}  // namespace moe
