// memory_plan.cpp: arena offsets by value lifetime, and aligned buffers (memory_plan.h).
#include "backends/cpu/memory_plan.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <map>
#include <vector>

namespace tandem::cpu {

std::shared_ptr<std::byte> aligned_buffer(int64_t bytes) {
  size_t n = static_cast<size_t>(round_up(std::max<int64_t>(bytes, 1), kAlign));
  void* p = std::aligned_alloc(kAlign, n);
  if (!p) return nullptr;
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

void plan_memory(Instance& inst) {
  const size_t nv = inst.values.size();
  auto root = [&](int v) {
    while (inst.values[v].kind == IValue::Kind::alias) v = inst.values[v].ref;
    return v;
  };
  std::vector<int> first(nv, -1), last(nv, -1);
  for (size_t k = 0; k < inst.kernels.size(); ++k) {
    const Kernel& kr = *inst.kernels[k];
    for (int v : kr.writes) {
      int r = root(v);
      if (first[r] < 0) first[r] = static_cast<int>(k);
      last[r] = std::max(last[r], static_cast<int>(k));
    }
    for (int v : kr.reads) {
      int r = root(v);
      last[r] = std::max(last[r], static_cast<int>(k));
      if (first[r] < 0) first[r] = static_cast<int>(k);
    }
  }
  std::vector<std::vector<int>> starts(inst.kernels.size()), ends(inst.kernels.size());
  for (size_t v = 0; v < nv; ++v) {
    if (inst.values[v].kind != IValue::Kind::arena || first[v] < 0) continue;
    starts[first[v]].push_back(static_cast<int>(v));
    ends[last[v]].push_back(static_cast<int>(v));
  }
  std::map<int64_t, int64_t> free_blocks;  // offset -> size
  int64_t top = 0;
  auto allocate = [&](int64_t size) {
    size = round_up(std::max<int64_t>(size, 1), kAlign);
    auto best = free_blocks.end();
    for (auto it = free_blocks.begin(); it != free_blocks.end(); ++it)
      if (it->second >= size && (best == free_blocks.end() || it->second < best->second)) best = it;
    if (best != free_blocks.end()) {
      int64_t off = best->first, sz = best->second;
      free_blocks.erase(best);
      if (sz > size) free_blocks[off + size] = sz - size;
      return off;
    }
    // Grow, reusing a free block at the top.
    if (!free_blocks.empty()) {
      auto lastb = std::prev(free_blocks.end());
      if (lastb->first + lastb->second == top) {
        int64_t off = lastb->first;
        free_blocks.erase(lastb);
        top = off + size;
        return off;
      }
    }
    int64_t off = top;
    top += size;
    return off;
  };
  auto release = [&](int64_t off, int64_t size) {
    size = round_up(std::max<int64_t>(size, 1), kAlign);
    auto it = free_blocks.emplace(off, size).first;
    auto next = std::next(it);
    if (next != free_blocks.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_blocks.erase(next);
    }
    if (it != free_blocks.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_blocks.erase(it);
      }
    }
  };
  for (size_t k = 0; k < inst.kernels.size(); ++k) {
    for (int v : starts[k]) inst.values[v].offset = allocate(inst.values[v].bytes);
    for (int v : ends[k]) release(inst.values[v].offset, inst.values[v].bytes);
  }
  inst.arena_bytes = top;
}

}  // namespace tandem::cpu
