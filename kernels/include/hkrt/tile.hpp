// LDS tiles of bf16 K-slices and the MFMA operand fragments read from them.
//
// A tile holds ROWS rows of one 64-deep K slice (128 bytes per row = 8 chunks of 16 bytes, one
// chunk = 8 consecutive k). Chunk c of row r is stored at r*128 + 16*(c ^ (r % 8)): the XOR spreads
// the 16-byte reads of an MFMA operand (16 rows, same chunk) over all LDS banks.
//
// Filling: one direct-to-LDS wave instruction writes 1 KiB = 8 whole rows, lane l at byte 16*l,
// i.e. row l/8, slot l%8; so lane l fetches chunk (l%8) ^ (l/8) of its row from global memory.
// Reading: for MFMA 16x16x32 lane l needs row l%16 and chunk 4*ks + l/16 (ks = 32-deep half of the
// slice), an 8-bf16 vector at one ds_read_b128.
#pragma once
#include "hkrt/mfma.hpp"

namespace hkrt {

constexpr int kSliceK = 64;              // K depth of one tile
constexpr int kRowBytes = kSliceK * 2;   // 128
constexpr int kRowsPerLoad = 8;          // rows one direct-to-LDS wave instruction fills

template <int ROWS>
struct SliceTile {
  static constexpr int kBytes = ROWS * kRowBytes;
  static constexpr int kLoads = ROWS / kRowsPerLoad;  // wave instructions to fill it

  // Byte offset, inside the global row, of the chunk lane l fetches when filling.
  __device__ static uint32_t fill_chunk_offset(int lane) { return 16u * ((lane % 8) ^ (lane / 8)); }
  // Row (within the 8 rows of one fill instruction) lane l fetches.
  __device__ static int fill_row(int lane) { return lane / 8; }

  // LDS byte offset of lane l's 16x16x32 operand for rows [row0, row0 + 16), K half ks.
  // row0 must be a multiple of 8 (it is: fragments start at multiples of 16).
  __device__ static uint32_t fragment_offset(int row0, int ks, int lane) {
    const int r = row0 + lane % 16, c = 4 * ks + lane / 16;
    return static_cast<uint32_t>(r * kRowBytes + 16 * (c ^ (r % 8)));
  }
};

// Reads the 8 bf16 at an LDS byte offset (one ds_read_b128).
__device__ inline bf16x8 lds_read_b128(const bf16* lds, uint32_t byte_offset) {
  return *reinterpret_cast<const bf16x8*>(reinterpret_cast<const char*>(lds) + byte_offset);
}

}  // namespace hkrt
