// The operand tiles and accumulators of a block-tiled bf16 GEMM (C = A * B^T, A and B K-contiguous), and
// the steps a kernel's K loop is made of; each kernel's body composes them into its schedule.
//
// A block computes a BM x BN tile with WAVES_M x WAVES_N waves, each owning a (BM/WAVES_M) x
// (BN/WAVES_N) sub-tile of MFMA 16x16x32 accumulators. K advances 64 at a time through LDS stages filled by
// direct-to-LDS loads (tile.hpp layout): fill() issues this wave's share of a K tile into a stage,
// read_half() reads one half (32 of K) of the wave's fragments from a stage, mma_cluster() runs that half's
// MFMAs at raised priority. A wave must wait for its own loads *before* the barrier that publishes them
// (s_barrier does not wait for direct-to-LDS loads).
//
// Edges: rows past M or N read zeros through the buffer range check; K must be a multiple of 8, and
// 16-byte chunks past K are pushed out of range (prepare()). The caller guarantees 16-byte aligned A and B,
// lda and ldb multiples of 8, and buffers under 2 GiB.
#pragma once
#include <type_traits>

#include "hkrt/buffer.hpp"
#include "hkrt/epilogue.hpp"
#include "hkrt/sync.hpp"
#include "hkrt/tile.hpp"

namespace hkrt {

// Where a lane's accumulator elements sit. Column quads (the MFMA's own order): element e of accumulator
// (i, j) at row 4 * (lane / 16) + 16 * i + e, column lane % 16 + 16 * j of the wave's sub-tile. Row runs
// (the MFMA computes B A^T instead, and B's operand rows are permuted to match): at row lane % 16 + 16 * i,
// column RUN * (lane / 16) + 4 * j + e, RUN = 4 * TN: a lane holds RUN consecutive columns of each of its
// rows, so a bf16 tile is stored 16 bytes per lane (8 columns) instead of 2: a wave's 128 x 64 sub-tile in
// 16 instructions of 16 half lines instead of 128 of 4 quarter lines, half the address-path cycles on the
// model (4096^3: 0.0895 -> 0.0883 ms).
enum class AccLayout { kColumnQuads, kRowRuns };

template <int BM_, int BN_, int WAVES_M, int WAVES_N, AccLayout LAYOUT = AccLayout::kColumnQuads>
struct TileGemm {
  static constexpr int BM = BM_, BN = BN_, WAVES = WAVES_M * WAVES_N, THREADS = WAVES * kWave;
  static constexpr int WM = BM / WAVES_M, WN = BN / WAVES_N, TM = WM / 16, TN = WN / 16;
  static constexpr bool ROW_RUNS = LAYOUT == AccLayout::kRowRuns;
  static constexpr int RUN = 4 * TN;  // a lane's consecutive columns in a row (row runs)
  using ATile = SliceTile<BM>;
  using BTile = SliceTile<BN, ROW_RUNS ? RUN : 0>;
  static constexpr int A_LOADS = ATile::kLoads / WAVES, B_LOADS = BTile::kLoads / WAVES;
  static_assert(A_LOADS * WAVES == ATile::kLoads && B_LOADS * WAVES == BTile::kLoads, "loads must split evenly");
  static constexpr int FRAG_STRIDE = 16 * kRowBytes;  // bytes between 16-row fragments
  // bytes between B fragments: row runs take rows RUN * q + 4 * j + p for fragment j (swizzle unchanged)
  static constexpr int B_FRAG_STRIDE = ROW_RUNS ? 4 * kRowBytes : FRAG_STRIDE;

  rsrc_t a_buf, b_buf;
  uint32_t a_off[A_LOADS], b_off[B_LOADS], a_frag[2], b_frag[2];
  int lane, wave, wm, wn, K, full_k;
  f32x4 acc[TM][TN];

  // wave_: this wave's index among the WAVES that share the work (default: its index in the block).
  __device__ TileGemm(const bf16* A, const bf16* B, int M, int N, int K_, int lda, int ldb, int m0, int n0,
                      int wave_ = -1)
      : K(K_), full_k(K_ / kSliceK) {
    lane = lane_id();
    wave = wave_ < 0 ? wave_id() : wave_;
    wm = wave / WAVES_N;
    wn = wave % WAVES_N;
    a_buf = make_buffer(A, static_cast<uint32_t>(M) * lda * 2);
    b_buf = make_buffer(B, static_cast<uint32_t>(N) * ldb * 2);
    aim(m0, n0, lda, ldb);
    for (int ks = 0; ks < 2; ++ks) {
      a_frag[ks] = ATile::fragment_offset(wm * WM + lane % 16, ks, lane);
      b_frag[ks] = BTile::fragment_offset(wn * WN + (ROW_RUNS ? RUN * (lane % 16 / 4) + lane % 4 : lane % 16), ks, lane);
    }
    clear();
  }

  // Point the loads at the block tile with origin (m0, n0). Lane offsets are fixed for a whole K loop; the K
  // position travels in the scalar offset.
  __device__ void aim(int m0, int n0, int lda, int ldb) {
    for (int i = 0; i < A_LOADS; ++i) {
      const int r = (A_LOADS * wave + i) * kRowsPerLoad + ATile::fill_row(lane);
      a_off[i] = static_cast<uint32_t>(m0 + r) * lda * 2 + ATile::fill_chunk_offset(r, lane);
    }
    for (int i = 0; i < B_LOADS; ++i) {
      const int r = (B_LOADS * wave + i) * kRowsPerLoad + BTile::fill_row(lane);
      b_off[i] = static_cast<uint32_t>(n0 + r) * ldb * 2 + BTile::fill_chunk_offset(r, lane);
    }
  }

  __device__ void clear() {
    for (int i = 0; i < TM; ++i)
      for (int j = 0; j < TN; ++j) acc[i][j] = f32x4{};
  }

  // Makes the accumulators' current values (the zeros of clear()) sit in their registers here: the compiler
  // would otherwise write the zeros just before the first MFMA, one VALU move per register (TM * TN * 4 of
  // them), which a schedule should do while it waits for its first loads, not in its first MFMA phase.
  __device__ void settle() {
    for (int i = 0; i < TM; ++i)
      for (int j = 0; j < TN; ++j) asm volatile("" : "+v"(acc[i][j]));
  }

  __device__ void load_a(int q, bf16* as, uint32_t soff) {
    load_lds_b128(a_buf, as + (A_LOADS * wave + q) * kRowsPerLoad * kSliceK, a_off[q], soff);
  }
  __device__ void load_b(int q, bf16* bs, uint32_t soff) {
    load_lds_b128(b_buf, bs + (B_LOADS * wave + q) * kRowsPerLoad * kSliceK, b_off[q], soff);
  }

  // Before the K tail is loaded: lanes whose chunk lies past K switch to an out-of-range offset
  // (zeros). Done once, so the loop itself has a single fill path with no per-lane selects.
  __device__ void enter_tail() {
    // the chunk a lane fetches depends on its row's swizzle (fill_chunk_offset: 16 bytes = 8 k per chunk)
    auto past = [&](auto tile, int load, int loads) {
      const int r = (loads * wave + load) * kRowsPerLoad + decltype(tile)::fill_row(lane);
      return full_k * kSliceK + static_cast<int>(decltype(tile)::fill_chunk_offset(r, lane) / 2) >= K;
    };
    for (int i = 0; i < A_LOADS; ++i) a_off[i] = past(ATile{}, i, A_LOADS) ? kOutOfRange : a_off[i];
    for (int i = 0; i < B_LOADS; ++i) b_off[i] = past(BTile{}, i, B_LOADS) ? kOutOfRange : b_off[i];
  }

  // Past the last tile every load reads zeros, into a stage no one reads again: the final step then
  // needs no branch of its own.
  __device__ void enter_end() {
    for (int i = 0; i < A_LOADS; ++i) a_off[i] = kOutOfRange;
    for (int i = 0; i < B_LOADS; ++i) b_off[i] = kOutOfRange;
  }

  // Make the offsets right for loading tile kt (uniform branches, each taken at most once).
  __device__ void prepare(int kt, int kt_end) {
    if (kt == full_k) enter_tail();
    if (kt == kt_end) enter_end();
  }

  // This wave's share of K tile kt, into one stage.
  __device__ void fill(bf16* as, bf16* bs, int kt) {
    const uint32_t soff = static_cast<uint32_t>(kt) * kRowBytes;
    for (int i = 0; i < A_LOADS; ++i) load_a(i, as, soff);
    for (int i = 0; i < B_LOADS; ++i) load_b(i, bs, soff);
  }

  // This wave's A and B fragments of half ks (K 32 * ks .. + 31) of the tile in a stage.
  __device__ void read_half(const bf16* as, const bf16* bs, int ks, bf16x8 (&a)[TM], bf16x8 (&b)[TN]) const {
    for (int i = 0; i < TM; ++i) a[i] = lds_read_b128(as, a_frag[ks] + i * FRAG_STRIDE);
    for (int j = 0; j < TN; ++j) b[j] = lds_read_b128(bs, b_frag[ks] + j * B_FRAG_STRIDE);
  }

  // The MFMA of accumulator tile (i, j) over one half's fragments.
  __device__ void mma(int i, int j, const bf16x8 (&a)[TM], const bf16x8 (&b)[TN]) {
    acc[i][j] = ROW_RUNS ? mma_16x16x32(b[j], a[i], acc[i][j]) : mma_16x16x32(a[i], b[j], acc[i][j]);
  }

  // All TM x TN MFMAs of one half.
  __device__ void mmas(const bf16x8 (&a)[TM], const bf16x8 (&b)[TN]) {
    for (int i = 0; i < TM; ++i)
      for (int j = 0; j < TN; ++j) mma(i, j, a, b);
  }

  // The same at raised priority (the waves in their memory phase wait).
  __device__ void mma_cluster(const bf16x8 (&a)[TM], const bf16x8 (&b)[TN]) {
    setprio<1>();
    mmas(a, b);
    setprio<0>();
  }

  // Calls f(lane_row, col, urow, v) for every accumulator element v of this wave (of MFMA tile column j
  // only, if given): the element sits at row lane_row + urow, column col of the block tile. lane_row and
  // col depend on the lane; urow is the same for the whole wave, so a store offset built as lane part +
  // uniform part keeps the per-row arithmetic in scalar registers. A lane holds rows 4*(lane/16)..+3 of
  // column lane%16 of each 16x16 tile.
  template <class F>
  __device__ void for_each_output(F&& f) const {
#pragma unroll
    for (int j = 0; j < TN; ++j) for_each_output(j, f);
  }

  template <class F>
  __device__ void for_each_output(int j, F&& f) const {
    for_each_output<false>(BM, j, f);
  }

  // As above, with CLIP for the accumulator rows (16 rows of the block tile) that hold a row of the tile's
  // first `rows` only: the others are skipped by a wave-uniform branch, so a skinny product (M = 1 in a
  // 64-row tile) issues a quarter of the stores.
  template <bool CLIP = true, class F>
  __device__ void for_each_output(int rows, int j, F&& f) const {
    const int row = lane_row(), col = lane_col(j);
#pragma unroll
    for (int i = 0; i < TM; ++i)
      if (!CLIP || holds(i, rows))
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if constexpr (ROW_RUNS) f(row, col + e, 16 * i, acc[i][j][e]);  // the column is per lane here
          else f(row, col, 16 * i + e, acc[i][j][e]);
        }
  }

  // Row runs: calls f(lane_row, col, urow, lo, hi) for the runs of 8 consecutive elements of accumulator
  // columns 2h and 2h + 1, lo at columns col .. col + 3 and hi at col + 4 .. + 7 of row lane_row + urow.
  template <class F>
  __device__ void for_each_run(int h, F&& f) const {
    static_assert(ROW_RUNS && TN % 2 == 0, "runs of 8 need the row-run layout");
    const int row = lane_row(), col = lane_col(2 * h);
#pragma unroll
    for (int i = 0; i < TM; ++i) f(row, col, 16 * i, acc[i][2 * h], acc[i][2 * h + 1]);
  }

  // Row runs: replaces every accumulator v of column j (columns col .. col + 3 of row lane_row + urow) by
  // f(lane_row, col, urow, v).
  template <class F>
  __device__ void map_row_quads(int j, F&& f) {
    static_assert(ROW_RUNS, "row quads need the row-run layout");
    const int row = lane_row(), col = lane_col(j);
#pragma unroll
    for (int i = 0; i < TM; ++i) acc[i][j] = f(row, col, 16 * i, acc[i][j]);
  }

  // Replaces every pair of accumulator elements v (rows lane_row + urow and + 1, column col) of MFMA tile
  // column j by f(lane_row, col, urow, v), v an f32x2 (for the packed VALU); with CLIP, in the accumulator
  // rows that hold one of the tile's first `rows` only.
  template <bool CLIP, class F>
  __device__ void map_output_pairs(int rows, int j, F&& f) {
    const int row = lane_row(), col = lane_col(j);
#pragma unroll
    for (int i = 0; i < TM; ++i)
      if (!CLIP || holds(i, rows))
#pragma unroll
        for (int r = 0; r < 4; r += 2) {
          const f32x2 v = f(row, col, 16 * i + r, f32x2{acc[i][j][r], acc[i][j][r + 1]});
          acc[i][j][r] = v.x;
          acc[i][j][r + 1] = v.y;
        }
  }

  // Calls f(lane_row, col, urow, acc) with each 16x16 accumulator (four rows lane_row + urow .. + 3 of
  // column col per lane) that holds a row of the block tile's first `rows`, by reference.
  template <class F>
  __device__ void for_each_accumulator(int rows, F&& f) {
    const int row = lane_row(), col = lane_col(0);
#pragma unroll
    for (int i = 0; i < TM; ++i)
      if (holds(i, rows))
#pragma unroll
        for (int j = 0; j < TN; ++j) f(row, col + 16 * j, 16 * i, acc[i][j]);
  }

  // This lane's first accumulator row (element r of accumulator row i sits 16 * i + r below it) and its
  // column in MFMA tile column j, within the block tile (taken once before a loop: inside its branches the
  // compiler would compute them again). The loops over the accumulators are fully unrolled: a loop would
  // index them at run time, which puts them in scratch memory.
  // (Row runs: element e of accumulator (i, j) sits at row lane_row + 16 * i, column lane_col(j) + e.)
  __device__ int lane_row() const { return wm * WM + (ROW_RUNS ? lane % 16 : 4 * (lane / 16)); }
  __device__ int lane_col(int j) const {
    return wn * WN + (ROW_RUNS ? RUN * (lane / 16) + 4 * j : 16 * j + lane % 16);
  }
  // Whether accumulator row i holds one of the block tile's first `rows` rows (wave-uniform: a row is past
  // `rows` for every lane once its uniform part is).
  __device__ bool holds(int i, int rows) const { return wm * WM + 16 * i < rows; }
};

// Stores v, converted to out_t. Rows past M fall outside the buffer and columns past N are sent outside it,
// so the range check drops both stores: no branch per element. A column past N gets a lane offset of 2 GiB,
// past any buffer (all are under 2 GiB) whatever row is added to it, so the select is made once per column
// and each element costs one add.
template <class out_t>
struct TileStore {
  static constexpr uint32_t kPastAnyBuffer = 0x80000000u;
  rsrc_t c_buf;
  int N, ldc;
  bool runs;  // 8-column runs fit: each lies wholly inside or past N, 16-byte aligned

  __device__ TileStore(out_t* C, int M, int N_, int ldc_) : N(N_), ldc(ldc_), runs(N_ % 8 == 0 && ldc_ % 8 == 0) {
    c_buf = make_buffer(C, static_cast<uint32_t>(M) * ldc * sizeof(out_t));
  }

  // Elements (row + urow, col .. col + 7) of a bf16 C from lo and hi, one 16-byte store (needs `runs`).
  __device__ void store_run(int row, int col, int urow, f32x4 lo, f32x4 hi) const {
    static_assert(sizeof(out_t) == 2, "runs of 8 are 16 bytes of bf16");
    const uint32_t lane = col < N ? (static_cast<uint32_t>(row) * ldc + col) * 2 : kPastAnyBuffer;
    const bf16x8 v = {to_bf16(lo[0]), to_bf16(lo[1]), to_bf16(lo[2]), to_bf16(lo[3]),
                      to_bf16(hi[0]), to_bf16(hi[1]), to_bf16(hi[2]), to_bf16(hi[3])};
    // the row part goes in the lane offset too: the range check (rows past M) leaves out soffset
    hkrt::store(c_buf, lane + static_cast<uint32_t>(urow * ldc) * 2, 0, __builtin_bit_cast(f32x4, v));
  }

  // Element (row + urow, col) of C; urow is wave-uniform.
  __device__ void store(int row, int col, int urow, float v) const {
    const uint32_t lane = col < N ? (static_cast<uint32_t>(row) * ldc + col) * sizeof(out_t) : kPastAnyBuffer;
    hkrt::store(c_buf, lane + static_cast<uint32_t>(urow * ldc) * sizeof(out_t), to_out(v, out_t{}));
  }
};

// Stores tile g (block origin m0, n0) as it is: in 16-byte runs where the layout and C allow, else an
// element at a time. With CLIP, the accumulator rows at or past M are skipped whole (column quads).
template <bool CLIP = false, class Tile, class out_t>
__device__ __forceinline__ void store_tile(const Tile& g, const TileStore<out_t>& out, int m0, int n0, int M = 0) {
  if constexpr (Tile::ROW_RUNS) {
    static_assert(!CLIP, "row runs are for whole tiles");
    if (out.runs) {
#pragma unroll
      for (int h = 0; h < Tile::TN / 2; ++h)
        g.for_each_run(h, [&](int r, int c, int ur, f32x4 lo, f32x4 hi) { out.store_run(m0 + r, n0 + c, ur, lo, hi); });
      return;
    }
  }
  auto store = [&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); };
  if constexpr (CLIP) {
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) g.for_each_output(M - m0, j, store);
  } else {
    g.for_each_output(store);
  }
}

// Stores tile g (block origin m0, n0), held in the row-run layout, as act(alpha * acc + beta * Cin + bias)
// (see store_tile_as): the epilogue of accumulator columns 2h and 2h + 1 (their Cin loads issued together),
// then their runs stored, in turn; each lane's 4 * TN bias values are loaded first.
template <int ACT, bool HAS_C, class Tile, class out_t>
__device__ __forceinline__ void store_row_runs_as(Tile& g, const Epilogue& ep, const TileStore<out_t>& out, int m0,
                                                  int n0) {
  f32x4 bias[Tile::TN];
#pragma unroll
  for (int j = 0; j < Tile::TN; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) bias[j][e] = ep.bias_at(n0 + g.lane_col(j) + e);
#pragma unroll
  for (int h = 0; h < Tile::TN / 2; ++h) {
#pragma unroll
    for (int j = 2 * h; j < 2 * h + 2; ++j)
      g.map_row_quads(j, [&](int r, int c, int ur, f32x4 v) {
        return ep.apply_row<ACT, HAS_C>(m0 + r, n0 + c, ur, v, bias[j]);
      });
    if (out.runs)
      g.for_each_run(h, [&](int r, int c, int ur, f32x4 lo, f32x4 hi) { out.store_run(m0 + r, n0 + c, ur, lo, hi); });
    else
#pragma unroll
      for (int j = 2 * h; j < 2 * h + 2; ++j)
        g.for_each_output(j, [&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); });
  }
}

// Stores tile g (block origin m0, n0) as act(alpha * acc + beta * Cin + bias) (the epilogue ep, activation
// ACT, with the beta * Cin term if HAS_C), a column of MFMA tiles at a time: a column's epilogue loads are
// issued together, then its stores, so the next column's loads wait behind those stores once (vmcnt counts
// both, in order), not once per element. The bias of every column is loaded first, before any store: its
// loads never wait behind one. With CLIP, the rows at or past M are skipped whole (for skinny tiles: a
// uniform branch per accumulator row). The row-run layout goes to store_row_runs_as.
template <int ACT, bool HAS_C, bool CLIP = false, class Tile, class out_t>
__device__ __forceinline__ void store_tile_as(Tile& g, const Epilogue& ep, const TileStore<out_t>& out, int m0, int n0,
                                              int M = 0) {
  if constexpr (Tile::ROW_RUNS) {
    static_assert(!CLIP, "row runs are for whole tiles");
    store_row_runs_as<ACT, HAS_C>(g, ep, out, m0, n0);
  } else {
    float bias[Tile::TN];
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) bias[j] = ep.bias_at(n0 + g.lane_col(j));
#pragma unroll
    for (int j = 0; j < Tile::TN; ++j) {
      auto apply = [&](int r, int c, int ur, f32x2 v) { return ep.apply<ACT, HAS_C>(m0 + r, n0 + c, ur, v, bias[j]); };
      auto store = [&](int r, int c, int ur, float v) { out.store(m0 + r, n0 + c, ur, v); };
      g.template map_output_pairs<CLIP>(M - m0, j, apply);
      g.template for_each_output<CLIP>(M - m0, j, store);
    }
  }
}

// store_tile_as for the activation act and whether ep has a Cin, known only at run time: the store is
// compiled once per form, free of per-element branches.
template <bool CLIP = false, class Tile, class out_t>
__device__ __forceinline__ void store_tile(Tile& g, const Epilogue& ep, const TileStore<out_t>& out, int act,
                                           int m0, int n0, int M = 0) {
  with_activation(act, [&](auto a) {
    ep.with_cin([&](auto has_c) { store_tile_as<a(), has_c(), CLIP>(g, ep, out, m0, n0, M); });
  });
}

}  // namespace hkrt
