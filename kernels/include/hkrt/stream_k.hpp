// Stream-K: G blocks share out all K iterations of some output tiles (T = tiles x tiles_k of them) evenly,
// block b taking iterations [b T / G, (b + 1) T / G) in tile order, so no block idles in a last round that
// the tiles do not fill. A block's range cuts at most its first and its last tile; a tile
// cut between two blocks is finished in the same launch by the second to arrive (sync.hpp), which adds
// the other's fp32 partial to its own.
#pragma once
#include "hkrt/buffer.hpp"
#include "hkrt/sync.hpp"
#include "hkrt/types.hpp"

namespace hkrt {

struct StreamK {
  uint32_t total;  // K iterations of all tiles; the runtime keeps total * blocks under 2^32
  uint32_t blocks, tiles_k;

  __device__ StreamK(int tiles, int tiles_k_, int blocks_) : total(tiles * tiles_k_), blocks(blocks_), tiles_k(tiles_k_) {}

  __device__ uint32_t begin(uint32_t b) const { return total * b / blocks; }
  // The block whose range holds iteration it.
  __device__ uint32_t block_of(uint32_t it) const { return ((it + 1) * blocks - 1) / total; }
  __device__ uint32_t first_block(uint32_t tile) const { return block_of(tile * tiles_k); }
  __device__ uint32_t last_block(uint32_t tile) const { return block_of((tile + 1) * tiles_k - 1); }
  // Where block b keeps its partial of tile t: two slots per block, one for the first tile of its range
  // (cut at its start), one for the last (cut at its end); a range inside one tile uses the first.
  // The tile block b's range begins in.
  __device__ uint32_t first_tile(uint32_t b) const { return begin(b) / tiles_k; }
  __device__ uint32_t slot(uint32_t b, uint32_t tile) const { return first_tile(b) == tile ? 2 * b : 2 * b + 1; }
};

// The K tiles by which the other block of a cut tile must be expected to arrive first for a block to look
// before storing its partial: looking costs a round trip to the counter, which a near tie loses (mi355x
// model, 2048 x 4096 x 4096, two blocks of 32 K tiles per tile: 0.0560 ms without looking, 0.0567 always).
constexpr int kLookAheadKTiles = 4;

// One piece of a block's work: K tiles kt_begin .. kt_end - 1 of output tile `tile`; `shared` is the tile's
// index among the shared-out ones, -1 for a whole-round tile.
struct Piece {
  int tile, kt_begin, kt_end, shared;
  __device__ bool cut(int tiles_k) const { return kt_begin > 0 || kt_end < tiles_k; }
};

// A block's pieces in order: its whole-round tiles (b, b + G, ... below `whole`, G the grid), then, if it is
// one of the sk.blocks sharing them, its stream-K range of the tiles left, numbered from `whole` on.
struct PieceWalk {
  int next_whole, whole, stride, tiles_k;
  uint32_t it, end;

  __device__ PieceWalk(const StreamK& sk, int b, int whole_, int grid)
      : next_whole(b), whole(whole_), stride(grid), tiles_k(sk.tiles_k),
        it(b < static_cast<int>(sk.blocks) ? sk.begin(b) : 0), end(b < static_cast<int>(sk.blocks) ? sk.begin(b + 1) : 0) {}

  // Whether `last`, the last piece of block b's range, is worth looking at its counter before storing its
  // partial (finish_cut_tile): it holds its tile's first K tiles, and the other block's piece of the tile,
  // which opens that block's range, is likely done first: it is shorter by a margin, or this range began in
  // an earlier tile (one more piece to enter and one more partial to store before this one).
  static __device__ bool worth_looking(const StreamK& sk, uint32_t b, const Piece& last) {
    return last.kt_begin == 0 && (sk.first_tile(b) != static_cast<uint32_t>(last.shared) ||
                                  sk.tiles_k - last.kt_end + kLookAheadKTiles <= static_cast<uint32_t>(last.kt_end));
  }

  __device__ bool next(Piece& p) {
    if (next_whole < whole) {
      p = Piece{next_whole, 0, tiles_k, -1};
      next_whole += stride;
      return true;
    }
    if (it >= end) return false;
    const int shared = static_cast<int>(it / tiles_k), kt_begin = static_cast<int>(it - shared * tiles_k);
    p = Piece{whole + shared, kt_begin, min(tiles_k, kt_begin + static_cast<int>(end - it)), shared};
    it += p.kt_end - p.kt_begin;
    return true;
  }
};

// The fp32 partial sums of a whole block tile, in the accumulators' own order: accumulator (i, j) of thread
// tid at 16 * ((i * TN + j) * THREADS + tid) in its slot, so every store and load is 16 bytes per lane,
// contiguous across the wave.
template <class Gemm>
struct TilePartials {
  static constexpr uint32_t kSlotBytes = 16u * Gemm::TM * Gemm::TN * Gemm::THREADS;
  rsrc_t buf;
  uint32_t lane;

  __device__ TilePartials(float* W, int slots) : lane(16u * threadIdx.x) {
    buf = make_buffer(W, kSlotBytes * static_cast<uint32_t>(slots));
  }
  __device__ static uint32_t at(int slot, int i, int j) {
    return slot * kSlotBytes + 16u * (i * Gemm::TN + j) * Gemm::THREADS;
  }

  __device__ void store(const Gemm& g, int slot) const {
#pragma unroll
    for (int i = 0; i < Gemm::TM; ++i)
#pragma unroll
      for (int j = 0; j < Gemm::TN; ++j) hkrt::store(buf, lane, at(slot, i, j), g.acc[i][j]);
  }
  // acc += the partial in slot, a row of accumulators at a time, the next ROWS_AHEAD rows' loads in flight
  // while a row is added (the partial comes from another CU, from the MALL at best: one row at a time left
  // its latency exposed). The fences keep the compiler from issuing every load first, which would need
  // registers for the whole tile twice.
  static constexpr int ROWS_AHEAD = 3;
  __device__ void add(Gemm& g, int slot) const {
    f32x4 part[ROWS_AHEAD + 1][Gemm::TN];
#pragma unroll
    for (int i = 0; i < ROWS_AHEAD && i < Gemm::TM; ++i)
#pragma unroll
      for (int j = 0; j < Gemm::TN; ++j) part[i][j] = load_f32x4(buf, lane, at(slot, i, j));
#pragma unroll
    for (int i = 0; i < Gemm::TM; ++i) {
      if (i + ROWS_AHEAD < Gemm::TM)
#pragma unroll
        for (int j = 0; j < Gemm::TN; ++j)
          part[(i + ROWS_AHEAD) % (ROWS_AHEAD + 1)][j] = load_f32x4(buf, lane, at(slot, i + ROWS_AHEAD, j));
      sched_fence();
#pragma unroll
      for (int j = 0; j < Gemm::TN; ++j) g.acc[i][j] += part[i % (ROWS_AHEAD + 1)][j];
      sched_fence();
    }
  }
};

// Finishes this block's share of cut tile `tile`: stores its partial and arrives, and in the last block to
// arrive leaves the tile's sum in the accumulators (returning true). A tile meets at most two blocks' ranges
// (the runtime picks a count of sharing blocks for which that holds: hkrt.strategy.stream_k_sharers), so the
// last adds the other's partial to its own: fp32 addition commutes, so the sum does not depend on which
// block is last. (Three or more would need the partials summed in order, the tile's accumulators twice over
// in registers.) With `look` (the block's last piece, where PieceWalk::worth_looking holds) the other block
// has most likely arrived, and if it has, this block neither stores nor releases a partial no one would
// read (256 KiB, about 4,700 cycles at the end of its work; 2048 x 14336 x 4096 0.1629 -> 0.1602 ms).
template <class Gemm>
__device__ bool finish_cut_tile(Gemm& g, const StreamK& sk, const TilePartials<Gemm>& parts, uint32_t b,
                                uint32_t tile, bool look, unsigned long long* counter, unsigned epoch) {
  const uint32_t first = sk.first_block(tile), last = sk.last_block(tile);
  if (!look || !others_arrived(counter, 2, epoch)) {
    parts.store(g, sk.slot(b, tile));
    if (!last_to_arrive(counter, 2, epoch)) return false;
  }
  parts.add(g, sk.slot(b == first ? last : first, tile));
  return true;
}

}  // namespace hkrt
