// LDS tiles of bf16 K-slices and the MFMA operand fragments read from them.
//
// A tile holds ROWS rows of one 64-deep K slice (128 bytes per row = 8 chunks of 16 bytes, one
// chunk = 8 consecutive k). Chunk c of row r is stored at r*128 + 16*(c ^ swizzle(r)): the XOR spreads
// the 16-byte reads of an MFMA operand (16 rows, same chunk) over all LDS banks. An operand's 16 rows are
// either 16 consecutive rows (swizzle r % 8), or, for RUN > 0, four runs of 4 consecutive rows RUN apart
// (rows RUN*q + 4*j + p, q and p in 0..3: the B operand of TileGemm's row-run accumulators), whose
// swizzle takes bits 0-1 of r and one bit of r / RUN instead, so that again every value occurs twice.
//
// Filling: one direct-to-LDS wave instruction writes 1 KiB = 8 whole rows, lane l at byte 16*l,
// i.e. row l/8, slot l%8; so lane l fetches chunk (l%8) ^ swizzle(row) of its row from global memory.
// Reading: for MFMA 16x16x32 a lane needs one row and chunk 4*ks + l/16 (ks = 32-deep half of the
// slice), an 8-bf16 vector at one ds_read_b128.
#pragma once
#include "hkrt/mfma.hpp"

namespace hkrt {

constexpr int kSliceK = 64;              // K depth of one tile
constexpr int kRowBytes = kSliceK * 2;   // 128
constexpr int kRowsPerLoad = 8;          // rows one direct-to-LDS wave instruction fills

template <int ROWS, int RUN = 0>
struct SliceTile {
  static constexpr int kBytes = ROWS * kRowBytes;
  static constexpr int kLoads = ROWS / kRowsPerLoad;  // wave instructions to fill it

  __device__ static int swizzle(int r) { return RUN ? (r & 3) | ((r / RUN) & 1) << 2 : r % 8; }
  // Byte offset, inside the global row, of the chunk lane l fetches when filling tile row `row`.
  __device__ static uint32_t fill_chunk_offset(int row, int lane) { return 16u * ((lane % 8) ^ swizzle(row)); }
  // Row (within the 8 rows of one fill instruction) lane l fetches.
  __device__ static int fill_row(int lane) { return lane / 8; }

  // LDS byte offset of lane l's 16x16x32 operand in tile row r, K half ks.
  __device__ static uint32_t fragment_offset(int r, int ks, int lane) {
    const int c = 4 * ks + lane / 16;
    return static_cast<uint32_t>(r * kRowBytes + 16 * (c ^ swizzle(r)));
  }
};

// Reads the 8 bf16 at an LDS byte offset (one ds_read_b128).
__device__ inline bf16x8 lds_read_b128(const bf16* lds, uint32_t byte_offset) {
  return *reinterpret_cast<const bf16x8*>(reinterpret_cast<const char*>(lds) + byte_offset);
}

}  // namespace hkrt
