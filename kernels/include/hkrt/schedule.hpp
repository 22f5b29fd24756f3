// Which output tile a workgroup computes: ordered for L2 locality on the 8-XCD chip.
// Dispatch hands workgroup ids round-robin to the XCDs (id % 8), each with its own L2
// (docs/facts.md §7); remapping gives each XCD a contiguous run of tiles, and a
// grouped order inside it keeps tiles that share A rows and B columns close together.
#pragma once
#include <hip/hip_runtime.h>

namespace hkrt {

constexpr int kXcds = 8;

// Bijection on [0, n): consecutive results come from workgroups on the same XCD.
__device__ inline int xcd_remap(int id, int n) {
  const int per = n / kXcds, rem = n % kXcds, xcd = id % kXcds, local = id / kXcds;
  return xcd < rem ? xcd * (per + 1) + local : rem * (per + 1) + (xcd - rem) * per + local;
}

// Tile (row, col) of a tiles_m x tiles_n grid for a linear tile id, walking GROUP tile-rows at a time.
template <int GROUP>
__device__ inline void grouped_tile(int id, int tiles_m, int tiles_n, int& tm, int& tn) {
  const int per_group = GROUP * tiles_n, group = id / per_group, first = group * GROUP;
  const int rows = min(tiles_m - first, GROUP), in_group = id % per_group;
  tm = first + in_group % rows;
  tn = in_group / rows;
}

}  // namespace hkrt
