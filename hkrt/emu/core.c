/* gfx950 execution core: runs decoded instruction records (see decode.py) for one kernel launch.
 *
 * Machine model (docs/facts.md §1-§5):
 *  - per wave: SGPRs (codes 0..127 index s[] directly: VCC is s[106..107], M0 s[124], EXEC s[126..127]),
 *    512 vector registers of 64 lanes (v0..v255, then a0..a255), SCC, PC;
 *  - vector memory loads, LDS reads, SMEM loads and LDS DMA complete only when s_waitcnt retires them
 *    (or at s_endpgm): until then their destination holds poison, and strict mode reports any access;
 *  - waves of a workgroup interleave (fixed round robin, or seeded random quanta) and meet at s_barrier;
 *  - workgroups run one after another; every memory access is checked against the device allocations.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xmmintrin.h>

#include "ops.h"
#include "two_over_pi.h"

#include "core_api.h"

enum { E_OK = 0, E_MEMORY = 1, E_HAZARD = 2, E_UNIMPL = 3, E_DEADLOCK = 4, E_LIMIT = 5, E_INVALID = 6,
       E_INTERRUPTED = 7 };

#define POISON 0x7FC17FC1u
#define NV 512
#define QMAX 64
#define LANES 64

enum { PK_VGPR = 1, PK_SGPR, PK_LDS_DMA, PK_STORE, PK_LDS };

typedef struct {
  uint8_t kind, nregs, dwords, lgkm_lds;
  uint16_t reg;
  uint64_t mask;
  uint32_t lds_base, slot;
  int64_t done; /* timing model: cycle at which the data has arrived (or the store is acknowledged) */
  uint32_t seq; /* strict mode: an LDS write's sequence number in its wave (hazards.c) */
  int32_t rec;  /* strict mode: the record index of the instruction that issued it */
  uint32_t data[LANES * 4];
} pending_t;

typedef struct {
  pending_t e[QMAX];
  int n;
} queue_t;

/* strict mode's wait-state bookkeeping (hazards.c): the last writer of each register, stamped with the
 * wave's count of issued wait states */
typedef struct {
  int64_t ws, c_ws, st_ws; /* last write; last read as an XDL MFMA's SrcC; last read as data of a wide store */
  int32_t pc, c_pc, st_pc; /* their record indices */
  uint16_t op, base;       /* the writer's opcode and the first register of the range it wrote */
  uint8_t kind, passes, n; /* the writer's kind, MFMA passes, the length of that range */
  uint8_t fwd;             /* the writer placed its result in part of the register (dst_sel / op_sel) */
  uint8_t c_passes;        /* the passes of the MFMA that read it as SrcC */
} vhz_t; /* (the writer's fields op .. fwd are adjacent: one store) */
typedef struct {
  int64_t ws;
  int32_t pc;
  uint16_t op;
  uint8_t kind;
} shz_t;
typedef struct {
  uint16_t reg;
  uint8_t n, file_v;
} hz_write_t;
#define HZ_WRITES 16
/* strict mode: the last write of one 16-byte LDS granule and the waves that read it since (hazards.c) */
typedef struct {
  uint32_t seq;      /* the write's sequence number in the writing wave */
  int32_t pc;        /* record index of the writing instruction */
  uint16_t readers;  /* bit i: wave i read the granule since that write (its lds_read_t says what and when) */
  uint16_t bytes;    /* the bytes that write wrote */
  uint8_t wave, kind; /* the writer, how it wrote (LW_*) */
} lds_owner_t;
/* strict mode: wave i's last read of one LDS granule (hazards.c) */
typedef struct {
  uint32_t seq;   /* the read's LDS sequence number in its wave */
  int32_t pc;     /* its record index */
  uint16_t bytes; /* the bytes read */
} lds_read_t;
#define LDS_MAX_WAVES 16 /* a workgroup has at most 1024 work-items */

typedef struct {
  uint32_t s[128];
  uint32_t *v; /* NV * LANES */
  int scc;
  uint32_t mode; /* the MODE hardware register (docs/facts.md §13.2) */
  int pc; /* record index */
  int status;
  queue_t vm, lgkm;
  uint8_t vpend[NV];
  uint8_t spend[128];
  /* timing model only (see timing_model.c) */
  int simd, prio, reason, slot;
  uint64_t age;
  int64_t next_issue, last_issue, prev_issue;
  int64_t *vready;  /* NV: cycle at which each vector register's pending ALU/MFMA result is ready */
  uint8_t *vmfma;   /* NV: 1 if that result comes from an MFMA (same-shape accumulation chains bypass it) */
  /* strict mode only (hazards.c) */
  int64_t ws; /* wait states issued */
  int64_t dgemm_ws; /* when the last DGEMM issued, and its record index */
  int32_t dgemm_pc;
  vhz_t vh[NV];
  shz_t sh[128];
  uint32_t lds_seq, lds_done, dma_seq; /* LDS instructions issued, retired; LDS DMAs delivered */
} wave_t;

enum { W_RUN = 0, W_BARRIER = 1, W_DONE = 2 };

typedef struct {
  emu_launch *L;
  wave_t *waves;
  int nwaves;
  uint8_t *lds;
  uint8_t *lds_pend; /* strict mode: per LDS dword, the LDS DMA writes into it not yet delivered */
  uint32_t lds_size;
  int cur_wave;
  int last_region;
  uint64_t rng;
  struct tm_s *tm; /* timing model state, NULL when off */
  double started;  /* host seconds at the launch's start (its time budget) */
  int64_t now;     /* timing model: the current cycle of the CU being stepped */
  int next;        /* record the stepped wave runs next: the following one unless its handler branches */
  /* strict mode (hazards.c) */
  const insn_t *cur;  /* the instruction being run */
  int role;           /* how the operand being fetched is used (ROLE_*) */
  int hz_nw;
  hz_write_t hz_w[HZ_WRITES]; /* its register writes, committed once it has run */
  lds_owner_t *lds_own;       /* per 16-byte LDS granule; NULL: races not tracked */
  lds_read_t *lds_rd;         /* per wave, per granule */
  uint32_t lds_granules;      /* entries of lds_own, and of each wave's part of lds_rd */
  uint32_t lds_pend_n;        /* dwords of lds_pend that are nonzero */
  uint32_t safe[3][LDS_MAX_WAVES]; /* by LW_* kind, each wave's lds_done (or dma_seq) at the last release */
} ctx_t;

/* The opcode table (generated from isa.OPS into optable.h, which is included after the handlers): for each
 * opcode id the function that runs it and the parameters that function reads. */
typedef int (*op_handler)(ctx_t *c, wave_t *w, const insn_t *in);
enum { CT_F16, CT_F32, CT_F64, CT_I16, CT_U16, CT_I32, CT_U32, CT_I64, CT_U64, CT_CLASS_F16, CT_CLASS_F32,
       CT_CLASS_F64 }; /* .type: isa.COMPARE_TYPES */
enum { BR_ALWAYS, BR_SCC0, BR_SCC1, BR_VCCZ, BR_VCCNZ, BR_EXECZ, BR_EXECNZ, BR_CDBGSYS, BR_CDBGUSER,
       BR_CDBGSYS_OR_USER, BR_CDBGSYS_AND_USER }; /* .cond of a branch */
enum { DPP_ANY, DPP_NONE_VOPC, DPP_NONE, DPP_ROW_NEWBCAST, DPP_NOT_VOP12 };
enum { FP_NONE, FP_32, FP_64, FP_16 }; /* .fpmode: isa.FP_* */   /* .dpp: see dpp_refused() */
typedef struct {
  op_handler run;
  uint8_t cond, type, cmpx, shift; /* compares: condition (ISA numbering), type; v_cmpx; s_lshlN_add: N */
  uint8_t m, n, k, ab_regs, cd_regs; /* MFMA shape and registers per lane */
  uint8_t wide; /* 64-bit operands: bit i source i, bit 3 the destination (isa.WIDE_*) */
  uint8_t elem_a, elem_b; /* MFMA: A's and B's element type (isa.MFMA_ELEMENTS) */
  uint8_t dpp;
  uint8_t dwords, buffer, scratch; /* scalar memory: dwords moved; SBASE is a buffer descriptor; private segment */
  uint8_t untimed;        /* read by the timing classes (isa.py), not by core.c */
  uint8_t fpmode, fpround; /* MODE's float fields the op honours (isa.FP_*), and whether their rounding too */
} op_entry;
static const op_entry OPS[OP_COUNT];

/* timing-model hooks, defined in timing_model.c */
static void tm_lds(ctx_t *c, wave_t *w, pending_t *p, const uint32_t *addr0, const uint32_t *addr1, int bytes,
                   uint64_t exec, int write);
static void tm_vmem(ctx_t *c, wave_t *w, pending_t *p, const uint64_t *lane_addr, int bytes, uint64_t exec,
                    int store, int lds_dma);
static void tm_smem(ctx_t *c, wave_t *w, pending_t *p);

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_next(ctx_t *c) {
  uint64_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return c->rng = x;
}

static int fail(ctx_t *c, int code, uint64_t addr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static int fail(ctx_t *c, int code, uint64_t addr, const char *fmt, ...) {
  emu_launch *L = c->L;
  if (L->err) return L->err;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(L->err_msg, sizeof L->err_msg, fmt, ap);
  va_end(ap);
  L->err = code;
  L->err_addr = addr;
  L->err_wave = c->cur_wave;
  L->err_insn = c->waves ? c->waves[c->cur_wave].pc : -1;
  return code;
}

static double host_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The launch's budgets besides instructions: a stop request from another thread (Ctrl-C) and host time.
 * Called at every workgroup start and every 4096 wave-instructions. */
static int check_budget(ctx_t *c) {
  emu_launch *L = c->L;
  if (((volatile emu_launch *)L)->stop) return fail(c, E_INTERRUPTED, 0, "the launch was interrupted");
  if (L->max_seconds > 0 && host_seconds() - c->started > L->max_seconds)
    return fail(c, E_LIMIT, 0, "the launch ran longer than its time budget of %g s (an endless loop? the "
                "budget is HKRT_EMU_MAX_SECONDS)", L->max_seconds);
  return 0;
}

static inline float f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t u32f(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline double f64(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

static inline uint32_t bf16_rne(float f) {
  uint32_t u = u32f(f);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return (u >> 16) | 0x0040u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

static inline uint16_t f16_bits(_Float16 h) { uint16_t u; memcpy(&u, &h, 2); return u; }
static inline _Float16 f16_of(uint16_t u) { _Float16 h; memcpy(&h, &u, 2); return h; }

/* fp32 -> fp16 rounding toward zero: finite values never round up in magnitude (so they saturate at 65504). */
static inline uint16_t f16_rtz(float f) {
  uint16_t sign = (uint16_t)((u32f(f) >> 16) & 0x8000u);
  float a = fabsf(f);
  if (a != a) return sign | 0x7E00u;
  if (isinf(a)) return sign | 0x7C00u;
  uint16_t h = f16_bits((_Float16)a); /* nearest; if that rounded up, step one fp16 ulp back towards zero */
  if ((float)f16_of(h) > a) h--;
  return sign | h;
}

/* V_MIN_F32 / V_MAX_F32 with MODE.IEEE = 1 (CDNA4 ISA pseudocode): a signaling NaN becomes quiet, a quiet NaN
 * yields the other operand, -0 orders below +0, and max picks S0 on a tie. */
static inline int is_snan32(uint32_t u) {
  return (u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu) && !(u & 0x400000u);
}

static inline float ieee_min(float a, float b) {
  uint32_t ua = u32f(a), ub = u32f(b);
  if (is_snan32(ua)) return f32(ua | 0x400000u);
  if (is_snan32(ub)) return f32(ub | 0x400000u);
  if (a != a) return b;
  if (b != b) return a;
  if (a == 0.0f && b == 0.0f) return (ua >> 31) ? a : b;
  return a < b ? a : b;
}

static inline float ieee_max(float a, float b) {
  uint32_t ua = u32f(a), ub = u32f(b);
  if (is_snan32(ua)) return f32(ua | 0x400000u);
  if (is_snan32(ub)) return f32(ub | 0x400000u);
  if (a != a) return b;
  if (b != b) return a;
  if (a == 0.0f && b == 0.0f) return (ua >> 31) ? b : a;
  return a >= b ? a : b;
}

/* IEEE 754-2019 minimum / maximum (v_minimum3/v_maximum3_f32, docs/facts.md §6.11): a NaN operand gives that NaN,
 * quieted, whatever the other is; -0 orders below +0. */
static inline float ieee_minimum(float a, float b) {
  if (a != a) return f32(u32f(a) | 0x400000u);
  if (b != b) return f32(u32f(b) | 0x400000u);
  if (a == 0.0f && b == 0.0f) return signbit(a) ? a : b;
  return a < b ? a : b;
}

static inline float ieee_maximum(float a, float b) {
  if (a != a) return f32(u32f(a) | 0x400000u);
  if (b != b) return f32(u32f(b) | 0x400000u);
  if (a == 0.0f && b == 0.0f) return signbit(a) ? b : a;
  return a > b ? a : b;
}

static inline float ieee_med3(float a, float b, float c) {
  if (a != a || b != b || c != c) return ieee_min(ieee_min(a, b), c);
  float m = ieee_max(ieee_max(a, b), c);
  if (m == a) return ieee_max(b, c);
  if (m == b) return ieee_max(a, c);
  return ieee_max(a, b);
}

/* ---------------------------------------------------------------- memory */

/* Whether LDS bytes [addr, addr + n) exist; 32-bit addresses that wrap (thread 0's s[tid - 1]) do not. */
static inline int lds_in(const ctx_t *c, uint32_t addr, uint32_t n) {
  return addr <= c->lds_size && n <= c->lds_size - addr;
}

/* Whether [addr, addr + n) lies in the region; no sum here can wrap around 2^64. */
static inline int in_region(const emu_region *r, uint64_t addr, uint32_t n) {
  return addr >= r->base && addr - r->base < r->size && n <= r->size - (addr - r->base);
}

static uint8_t *translate(ctx_t *c, uint64_t addr, uint32_t n) {
  const emu_region *r = c->L->regions;
  int lo = 0, hi = c->L->nregions - 1, k = c->last_region;
  if (k >= 0 && k < c->L->nregions && in_region(&r[k], addr, n)) return r[k].host + (addr - r[k].base);
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (addr < r[mid].base) hi = mid - 1;
    else if (addr - r[mid].base >= r[mid].size) lo = mid + 1;
    else {
      if (!in_region(&r[mid], addr, n)) return NULL;
      c->last_region = mid;
      return r[mid].host + (addr - r[mid].base);
    }
  }
  return NULL;
}

static int gread(ctx_t *c, uint64_t addr, void *out, uint32_t n) {
  uint8_t *p = translate(c, addr, n);
  if (!p) return fail(c, E_MEMORY, addr, "memory read of %u bytes at %#llx is outside every device allocation", n,
                      (unsigned long long)addr);
  memcpy(out, p, n);
  return 0;
}

static int gwrite(ctx_t *c, uint64_t addr, const void *in, uint32_t n) {
  uint8_t *p = translate(c, addr, n);
  if (!p) return fail(c, E_MEMORY, addr, "memory write of %u bytes at %#llx is outside every device allocation", n,
                      (unsigned long long)addr);
  memcpy(p, in, n);
  return 0;
}

/* Matrix-pipe cycles of an MFMA: the opcode table's figure (isa.MFMA_CYCLES), which for the f8f6f4 MFMAs is that
 * with an fp8/bf8 operand; without one (CBSZ and BLGP both 2 or more) they take half (docs/facts.md §1.15). */
static inline int mfma_cycles(const insn_t *in) {
  int op = in->op, f8f6f4 = op == OP_V_MFMA_F32_16X16X128_F8F6F4 || op == OP_V_MFMA_F32_32X32X64_F8F6F4 ||
                            op == OP_V_MFMA_SCALE_F32_16X16X128_F8F6F4 || op == OP_V_MFMA_SCALE_F32_32X32X64_F8F6F4;
  return f8f6f4 && (in->imm & 7) >= 2 && (in->imm >> 8 & 7) >= 2 ? OP_XDL_CYCLES[op] / 2 : OP_XDL_CYCLES[op];
}

/* ---------------------------------------------------------------- hazards */

#include "hazards.c"

static int check_v(ctx_t *c, wave_t *w, int reg, int n, int writing) {
  for (int i = 0; i < n; i++)
    if (reg + i < NV && w->vpend[reg + i]) {
      if (!c->L->strict) return 0;
      int r = reg + i;
      return fail(c, E_HAZARD, 0, "%s %c%d while a load into it is outstanding (missing s_waitcnt)",
                  writing ? "write of" : "read of", r >= 256 ? 'a' : 'v', r & 255);
    }
  return c->L->strict ? hz_vector(c, w, reg, n, writing) : 0;
}

static int check_s(ctx_t *c, wave_t *w, int reg, int n, int writing) {
  for (int i = 0; i < n; i++)
    if (reg + i < 128 && w->spend[reg + i]) {
      if (!c->L->strict) return 0;
      return fail(c, E_HAZARD, 0, "%s s%d while a scalar load into it is outstanding (missing s_waitcnt lgkmcnt)",
                  writing ? "write of" : "read of", reg + i);
    }
  return c->L->strict ? hz_scalar(c, w, reg, n, writing) : 0;
}

/* ---------------------------------------------------------------- operands */

static inline uint64_t exec_of(wave_t *w) { return (uint64_t)w->s[126] | ((uint64_t)w->s[127] << 32); }
static inline uint64_t vcc_of(wave_t *w) { return (uint64_t)w->s[106] | ((uint64_t)w->s[107] << 32); }
static inline uint64_t sget64(wave_t *w, int r) { return (uint64_t)w->s[r] | ((uint64_t)w->s[r + 1] << 32); }

static const uint32_t INLINE_F32[9] = {0x3F000000u, 0xBF000000u, 0x3F800000u, 0xBF800000u, 0x40000000u,
                                       0xC0000000u, 0x40800000u, 0xC0800000u, 0x3E22F983u};
/* The same constants for 64-bit operands are fp64 patterns (llvm-mc encodes s_mov_b64 s[0:1],
 * 0x3ff0000000000000 as the inline constant 1.0). */
static const uint64_t INLINE_F64[9] = {0x3FE0000000000000ull, 0xBFE0000000000000ull, 0x3FF0000000000000ull,
                                       0xBFF0000000000000ull, 0x4000000000000000ull, 0xC000000000000000ull,
                                       0x4010000000000000ull, 0xC010000000000000ull, 0x3FC45F306DC9C882ull};

/* 32-bit scalar-side operand (SGPR, special register or constant). */
static int sval(ctx_t *c, wave_t *w, const insn_t *in, int code, uint32_t *out) {
  if (code < 128) {
    if (code > 101 && code != 106 && code != 107 && code != 124 && code != 126 && code != 127 && code != 102 &&
        code != 103)
      return fail(c, E_INVALID, 0, "read of unsupported scalar operand %d", code);
    if (check_s(c, w, code, 1, 0)) return 1;
    *out = w->s[code];
  } else if (code <= 192) *out = (uint32_t)(code - 128);
  else if (code <= 208) *out = (uint32_t)(192 - code);
  else if (code >= 240 && code <= 248) *out = INLINE_F32[code - 240];
  else if (code == 255) *out = in->literal;
  else if (code == 235) *out = (uint32_t)(c->L->shared_base >> 32); /* 32-bit use: the aperture's high half */
  else if (code == 237) *out = (uint32_t)(c->L->private_base >> 32);
  else if ((code == 251 || code == 252) && c->L->strict && hz_zero_flag(c, w, code)) return 1;
  else if (code == 251) *out = vcc_of(w) == 0;
  else if (code == 252) *out = exec_of(w) == 0;
  else if (code == 253) *out = (uint32_t)w->scc;
  else return fail(c, E_INVALID, 0, "read of unsupported scalar operand %d", code);
  return 0;
}

static int sval64(ctx_t *c, wave_t *w, const insn_t *in, int code, uint64_t *out) {
  if (code < 128) {
    if (check_s(c, w, code, 2, 0)) return 1;
    *out = sget64(w, code);
  } else if (code <= 208) {
    uint32_t v;
    if (sval(c, w, in, code, &v)) return 1;
    *out = (uint64_t)(int64_t)(int32_t)v; /* inline integers sign-extend */
  } else if (code >= 240 && code <= 248) *out = INLINE_F64[code - 240];
  else if (code == 235) *out = c->L->shared_base;
  else if (code == 237) *out = c->L->private_base;
  else if (code == 255) *out = in->literal; /* 32-bit literal, zero-extended */
  else {
    uint32_t v;
    if (sval(c, w, in, code, &v)) return 1;
    *out = v;
  }
  return 0;
}

static int swrite(ctx_t *c, wave_t *w, int code, uint32_t v) {
  if (code < 0) return 0;
  if (code > 127 || (code > 101 && code != 106 && code != 107 && code != 124 && code != 126 && code != 127))
    return fail(c, E_INVALID, 0, "write to unsupported scalar destination %d", code);
  if (check_s(c, w, code, 1, 1)) return 1;
  w->s[code] = v;
  return 0;
}

static int swrite64(ctx_t *c, wave_t *w, int code, uint64_t v) {
  if (swrite(c, w, code, (uint32_t)v)) return 1;
  return swrite(c, w, code + 1, (uint32_t)(v >> 32));
}

/* Per-lane 32-bit vector operand: points either at a register row or at a broadcast in tmp. */
static int vsrc(ctx_t *c, wave_t *w, const insn_t *in, int code, uint32_t *tmp, const uint32_t **out) {
  if (code >= 256) {
    int r = code - 256;
    if (check_v(c, w, r, 1, 0)) return 1;
    *out = w->v + (size_t)r * LANES;
    return 0;
  }
  uint32_t s;
  if (sval(c, w, in, code, &s)) return 1;
  for (int l = 0; l < LANES; l++) tmp[l] = s;
  *out = tmp;
  return 0;
}

/* 64-bit per-lane operand as lo/hi rows. */
static int vsrc64(ctx_t *c, wave_t *w, const insn_t *in, int code, uint32_t *tlo, uint32_t *thi, const uint32_t **lo,
                  const uint32_t **hi) {
  if (code >= 256) {
    int r = code - 256;
    if (check_v(c, w, r, 2, 0)) return 1;
    *lo = w->v + (size_t)r * LANES;
    *hi = w->v + (size_t)(r + 1) * LANES;
    return 0;
  }
  uint64_t s;
  if (sval64(c, w, in, code, &s)) return 1;
  for (int l = 0; l < LANES; l++) {
    tlo[l] = (uint32_t)s;
    thi[l] = (uint32_t)(s >> 32);
  }
  *lo = tlo;
  *hi = thi;
  return 0;
}

static inline uint32_t *vrow(wave_t *w, int code) { return w->v + (size_t)(code - 256) * LANES; }

static int vdst_check(ctx_t *c, wave_t *w, int code, int n) {
  if (code < 256 || code - 256 + n > NV) return fail(c, E_INVALID, 0, "bad vector destination %d", code);
  return check_v(c, w, code - 256, n, 1);
}

/* SDWA operand select: extract a byte or word (sign- or zero-extended). sel 6 = DWORD. */
static inline uint32_t sdwa_sel(uint32_t v, int sel, int sext) {
  if (sel <= 3) {
    uint32_t b = (v >> (8 * sel)) & 0xFF;
    return sext ? (uint32_t)(int32_t)(int8_t)b : b;
  }
  if (sel <= 5) {
    uint32_t h = (v >> (16 * (sel - 4))) & 0xFFFF;
    return sext ? (uint32_t)(int32_t)(int16_t)h : h;
  }
  return v;
}

/* Write a 32-bit VALU result row honouring EXEC and SDWA destination selection. */
static void vwrite(wave_t *w, const insn_t *in, int code, const uint32_t *res, uint64_t mask) {
  uint32_t *d = vrow(w, code);
  if (in->flags & (1u << F_SDWA)) {
    int sel = (in->flags2 >> SDWA_DST_SEL) & 7, unused = (in->flags2 >> SDWA_DST_UNUSED) & 3;
    int sh = sel <= 3 ? 8 * sel : sel <= 5 ? 16 * (sel - 4) : 0, width = sel <= 3 ? 8 : sel <= 5 ? 16 : 32;
    uint32_t field = width == 32 ? ~0u : ((1u << width) - 1) << sh;
    for (int l = 0; l < LANES; l++) {
      if (!(mask >> l & 1)) continue;
      uint32_t v = (res[l] << sh) & field, old = d[l];
      if (width < 32) {
        if (unused == 2) v |= old & ~field; /* UNUSED_PRESERVE */
        else if (unused == 1 && sh + width < 32 && (v >> (sh + width - 1) & 1))
          v |= ~0u << (sh + width); /* UNUSED_SEXT: the field's sign fills the bits above it */
      }
      d[l] = v;
    }
    return;
  }
  if (mask == ~0ull) {
    memcpy(d, res, LANES * 4);
    return;
  }
  for (int l = 0; l < LANES; l++)
    if (mask >> l & 1) d[l] = res[l];
}

/* ---------------------------------------------------------------- pending memory operations */

static pending_t *q_push(queue_t *q) {
  pending_t *p = &q->e[q->n++];
  p->kind = 0;
  p->lgkm_lds = 0;
  p->seq = 0;
  return p;
}

static void deliver(ctx_t *c, wave_t *w, pending_t *p) {
  switch (p->kind) {
    case PK_VGPR:
      for (int r = 0; r < p->nregs; r++) {
        uint32_t *d = w->v + (size_t)(p->reg + r) * LANES;
        for (int l = 0; l < LANES; l++)
          if (p->mask >> l & 1) d[l] = p->data[r * LANES + l];
        if (w->vpend[p->reg + r]) w->vpend[p->reg + r]--;
      }
      if (p->seq) w->lds_done = p->seq; /* an LDS read: LDS instructions retire in order */
      break;
    case PK_SGPR:
      for (int r = 0; r < p->nregs; r++) {
        w->s[p->reg + r] = p->data[r];
        if (w->spend[p->reg + r]) w->spend[p->reg + r]--;
      }
      break;
    case PK_LDS_DMA:
      if (c->lds_own) {
        uint32_t at[LANES];
        for (int l = 0; l < LANES; l++) at[l] = p->lds_base + (uint32_t)l * p->slot;
        if (lds_access_lanes(c, at, p->mask, 4u * p->dwords, LA_DMA, w->dma_seq + 1, p->rec)) return;
      }
      for (int l = 0; l < LANES; l++) {
        if (!(p->mask >> l & 1)) continue;
        uint32_t a = p->lds_base + (uint32_t)l * p->slot;
        for (int k = 0; k < p->dwords; k++) {
          uint32_t at = a + 4 * k;
          if (!lds_in(c, at, 4)) break; /* LDS-side out of range: masked off (docs/facts.md §3.5) */
          memcpy(c->lds + at, &p->data[l * 4 + k], 4);
          if (c->lds_pend)
            for (uint32_t d = at >> 2; d <= (at + 3) >> 2; d++)
              if (c->lds_pend[d] && !--c->lds_pend[d]) c->lds_pend_n--;
        }
      }
      break;
    case PK_LDS:
      w->lds_done = p->seq; /* LDS instructions retire in order */
      break;
    default:
      break; /* stores were performed at issue */
  }
  if (p->kind == PK_LDS_DMA) w->dma_seq++;
}

/* Retire entries so that at most `keep` remain. LDS results retire in order; scalar loads may return out of
 * order, so they are retired last (the latest a legal hardware ordering allows). */
static void q_retire(ctx_t *c, wave_t *w, queue_t *q, int keep, int lgkm) {
  if (q->n <= keep) return;
  int need = q->n - keep;
  if (!lgkm) {
    for (int i = 0; i < need; i++) deliver(c, w, &q->e[i]);
    memmove(q->e, q->e + need, (size_t)(q->n - need) * sizeof(pending_t));
    q->n -= need;
    return;
  }
  int done[QMAX] = {0};
  int k = 0;
  for (int pass = 0; pass < 2 && k < need; pass++)
    for (int i = 0; i < q->n && k < need; i++)
      if (!done[i] && ((pass == 0) == (q->e[i].lgkm_lds != 0))) {
        deliver(c, w, &q->e[i]);
        done[i] = 1;
        k++;
      }
  int j = 0;
  for (int i = 0; i < q->n; i++)
    if (!done[i]) {
      if (i != j) q->e[j] = q->e[i];
      j++;
    }
  q->n = j;
}

static pending_t *issue(ctx_t *c, wave_t *w, queue_t *q, int lgkm) {
  if (q->n == QMAX) q_retire(c, w, q, QMAX - 1, lgkm); /* the hardware stalls issue until one completes */
  return q_push(q);
}

/* A load into VGPRs: destination poisoned now, data delivered at retire. */
static pending_t *issue_vload(ctx_t *c, wave_t *w, queue_t *q, int lgkm, int dst, int nregs, uint64_t mask) {
  pending_t *p = issue(c, w, q, lgkm);
  p->kind = PK_VGPR;
  p->reg = (uint16_t)(dst - 256);
  p->nregs = (uint8_t)nregs;
  p->mask = mask;
  p->lgkm_lds = (uint8_t)lgkm;
  if (lgkm) p->seq = ++w->lds_seq; /* an LDS instruction returning data */
  for (int r = 0; r < nregs; r++) {
    uint32_t *d = vrow(w, dst + r);
    for (int l = 0; l < LANES; l++)
      if (mask >> l & 1) d[l] = POISON;
    w->vpend[p->reg + r]++;
  }
  return p;
}

/* ---------------------------------------------------------------- MFMA */

/* D += A B for one MFMA (At: A transposed): each entry adds its K products in order of k (the same result as one entry at a
 * time); a row's accumulators stay in registers while k runs. */
#define MFMA_SUM(name, NN)                                                                             \
  static void name(double D[32][32], double At[64][32], double B[64][32], int M, int K) {              \
    for (int i = 0; i < M; i++) {                                                                      \
      double acc[NN];                                                                                  \
      memcpy(acc, D[i], sizeof acc);                                                                   \
      for (int k = 0; k < K; k++) {                                                                    \
        double a = At[k][i];                                                                           \
        const double *b = B[k];                                                                        \
        _Pragma("GCC unroll 32") for (int j = 0; j < NN; j++) acc[j] += a * b[j];                     \
      }                                                                                                \
      memcpy(D[i], acc, sizeof acc);                                                                   \
    }                                                                                                  \
  }
MFMA_SUM(mfma_sum16, 16)
MFMA_SUM(mfma_sum32, 32)

/* The CDNA3 accumulation model MMA-Sim reverse-engineered (docs/facts.md §1.8), offered as an alternative to the
 * exact sum: K in chunks of 8, in increasing k; a chunk's products are aligned to its largest product exponent
 * and truncated toward zero below 24 fractional bits, then summed; that sum (floored to 31 fractional bits) and
 * the accumulator (floored to 24) are aligned to their common exponent, added, and rounded to fp32 (RNE),
 * which is the accumulator of the next chunk. Whether CDNA4 does the same is unknown (OQ 1). */
enum { MFMA_EXACT = 0, MFMA_CDNA3 = 1 };

static inline void split_binary(double x, double *sig, int *exp) {
  /* x = sig * 2^exp with 1 <= |sig| < 2, or a subnormal scaled to exponent -126; zero has exponent -126 */
  int e;
  double f = frexp(x, &e);
  *sig = 2.0 * f;
  *exp = e - 1;
  if (*exp < -126) {
    *sig = ldexp(*sig, *exp + 126);
    *exp = -126;
  }
  if (x == 0.0) *exp = -126;
}

static double cdna3_chunk(double acc, const double *pa, const double *pb, int n) {
  double exact = acc;
  for (int t = 0; t < n; t++) exact += pa[t] * pb[t];
  if (isnan(exact) || isinf(exact)) return exact; /* NaN and infinite inputs: IEEE's answer */
  double sig[8];
  int ex[8], emax = INT32_MIN, pinf = 0, ninf = 0;
  for (int t = 0; t < n; t++) {
    double p = pa[t] * pb[t], sa, sb;
    int ea, eb;
    if (p >= 0x1p128) pinf = 1;
    if (p <= -0x1p128) ninf = 1;
    split_binary(pa[t], &sa, &ea);
    split_binary(pb[t], &sb, &eb);
    sig[t] = sa * sb;
    ex[t] = ea + eb;
    if (ex[t] > emax) emax = ex[t];
  }
  if (pinf || ninf) return pinf && ninf ? NAN : pinf ? INFINITY : -INFINITY;
  double sum = 0.0; /* in units of 2^(emax - 24): integers, exact */
  for (int t = 0; t < n; t++) sum += trunc(ldexp(sig[t], 24 + ex[t] - emax));
  double sc;
  int ec;
  split_binary(acc, &sc, &ec);
  int e = emax > ec ? emax : ec;
  double s31 = floor(ldexp(sum, 7 + emax - e));  /* units of 2^(e - 31) */
  double c24 = floor(ldexp(sc, 24 + ec - e));    /* units of 2^(e - 24) */
  return (double)(float)ldexp(ldexp(s31, -31) + ldexp(c24, -24), e);
}

static void mfma_sum_cdna3(double D[32][32], double At[64][32], double B[64][32], int M, int N, int K) {
  int g = K < 8 ? K : 8;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = (double)(float)D[i][j], pa[8], pb[8];
      for (int k0 = 0; k0 < K; k0 += g) {
        for (int t = 0; t < g; t++) {
          pa[t] = At[k0 + t][i];
          pb[t] = B[k0 + t][j];
        }
        acc = cdna3_chunk(acc, pa, pb, g);
      }
      D[i][j] = acc;
    }
}

enum { EL_BF16, EL_F16, EL_I8, EL_FP8, EL_BF8, EL_F32, EL_F64 }; /* isa.MFMA_ELEMENTS */

/* ---- narrow floats (docs/facts.md §1.15): one description per format, and the one decoder and encoder every
 * conversion and MFMA uses. The first five are in the order of the f8f6f4 MFMAs' CBSZ/BLGP codes. */
enum { NF_FP8, NF_BF8, NF_FP6, NF_BF6, NF_FP4, NF_F16, NF_BF16, NF_F32 };
enum { NK_FN, NK_IEEE, NK_SAT }; /* E4M3: no infinities, all-ones is NaN; IEEE infinities and NaNs; neither */
typedef struct {
  uint8_t bits, mbits, kind;
  int16_t bias;
} nf_t;
static const nf_t NF[] = {{8, 3, NK_FN, 7},   {8, 2, NK_IEEE, 15},  {6, 3, NK_SAT, 1},     {6, 2, NK_SAT, 3},
                          {4, 1, NK_SAT, 1},  {16, 10, NK_IEEE, 15}, {16, 7, NK_IEEE, 127}, {32, 23, NK_IEEE, 127}};
enum { NF_RNE, NF_TRUNC };

static double nf_decode(uint32_t code, int f) {
  const nf_t *t = &NF[f];
  int eb = t->bits - 1 - t->mbits, top = (1 << eb) - 1, sign = code >> (t->bits - 1) & 1;
  int ex = code >> t->mbits & top, man = code & ((1 << t->mbits) - 1);
  double v;
  if (t->kind == NK_IEEE && ex == top) v = man ? NAN : INFINITY;
  else if (t->kind == NK_FN && ex == top && man == (1 << t->mbits) - 1) v = NAN;
  else if (ex == 0) v = ldexp(man, 1 - t->bias - t->mbits);
  else v = ldexp(man + (1 << t->mbits), ex - t->bias - t->mbits);
  return sign ? -v : v;
}

/* x rounded to format f, to nearest even or toward zero. With MODE.FP16_OVFL clear (the only MODE the core runs),
 * what exceeds the largest finite value after rounding, and an infinity, becomes E4M3's NaN or an infinity; the
 * 6- and 4-bit formats saturate (they have neither), and take NaN to the largest value with its sign. */
static uint32_t nf_encode(double x, int f, int mode) {
  const nf_t *t = &NF[f];
  int m = t->mbits, eb = t->bits - 1 - m, top = (1 << eb) - 1;
  uint32_t sign = (uint32_t)(signbit(x) != 0) << (t->bits - 1), mmask = (1u << m) - 1;
  uint32_t maxcode = t->kind == NK_IEEE ? (uint32_t)(top - 1) << m | mmask
                   : t->kind == NK_FN ? (uint32_t)top << m | (mmask - 1) : (uint32_t)top << m | mmask;
  uint32_t over = t->kind == NK_IEEE ? (uint32_t)top << m : t->kind == NK_FN ? (uint32_t)top << m | mmask : maxcode;
  if (x != x) return sign | (t->kind == NK_IEEE ? (uint32_t)top << m | 1u << (m - 1) : over);
  double a = fabs(x);
  if (isinf(a)) return sign | over;
  if (a == 0) return sign;
  int e;
  frexp(a, &e);
  e -= 1; /* a in [2^e, 2^(e+1)) */
  if (e < 1 - t->bias) e = 1 - t->bias; /* a subnormal of the format: the ulp of the smallest normal */
  double q = ldexp(a, m - e), n = mode == NF_TRUNC ? floor(q) : nearbyint(q); /* in ulps of a's binade */
  if (n >= (double)(2u << m)) { /* rounded up into the next binade */
    n /= 2;
    e += 1;
  }
  if (n < (double)(1u << m)) return sign | (uint32_t)n; /* subnormal (or zero) */
  int field = e + t->bias;
  if (field > top) return sign | over;
  uint32_t code = (uint32_t)field << m | ((uint32_t)n & mmask);
  return sign | (code > maxcode ? over : code);
}

/* Stochastic rounding as the ISA's V_CVT_SR_FP8_F32 pseudocode gives it: the top 23 - m bits of the random word
 * are added to x's fp32 mantissa field (a carry out of the field is lost), then the result is truncated to the m
 * mantissa bits of format f. NaN and infinities convert as they are. */
static uint32_t nf_encode_sr(float x, int f, uint32_t random) {
  uint32_t u = u32f(x);
  if ((u & 0x7F800000u) != 0x7F800000u)
    u = (u & 0xFF800000u) | ((u + (random >> (9 + NF[f].mbits))) & 0x7FFFFFu);
  return nf_encode(f32(u), f, NF_TRUNC);
}

/* bits [off, off + width) of a lane's value held in consecutive registers from `row` (width < 32): a packed
 * narrow element may straddle two registers */
static inline uint32_t lane_bits(const uint32_t *row, int lane, int off, int width) {
  const uint32_t *r = row + (size_t)(off / 32) * LANES + lane;
  uint64_t v = (uint64_t)r[0] | (off % 32 + width > 32 ? (uint64_t)r[LANES] << 32 : 0);
  return (uint32_t)(v >> (off % 32)) & ((1u << width) - 1);
}

/* An E8M0 scale (bias 127; 0xFF is NaN) as the power of two it stands for */
static inline double e8m0(uint32_t s) { return s == 255 ? NAN : ldexp(1.0, (int)s - 127); }

/* element `it` of a lane's A or B operand, from the registers starting at `row` */
static inline double mfma_element(const uint32_t *row, int lane, int it, int el) {
  if (el <= EL_F16) {
    uint32_t h = (row[(size_t)(it / 2) * LANES + lane] >> (16 * (it % 2))) & 0xFFFF;
    return el == EL_BF16 ? f32(h << 16) : (double)f16_of((uint16_t)h);
  }
  uint32_t b = (row[(size_t)(it / 4) * LANES + lane] >> (8 * (it % 4))) & 0xFF;
  if (el == EL_I8) return (int8_t)b;
  return nf_decode(b, el == EL_BF8 ? NF_BF8 : NF_FP8);
}

/* the lane whose B values lane l reads under BLGP (docs/facts.md §1.7) */
static inline int blgp_lane(int l, int blgp) {
  switch (blgp) {
    case 1: return l % 32;
    case 2: return l % 32 + 32;
    case 3: return (l + 16) % 64;
    case 4: return l % 16;
    case 5: return l % 16 + 16;
    case 6: return l % 16 + 32;
    case 7: return l % 16 + 48;
    default: return l;
  }
}

static inline __attribute__((always_inline)) int mfma(ctx_t *c, wave_t *w, const insn_t *in, int M, int N, int K,
                                                      int nab, int ncd) {
  int KL = K / (64 / M), MI = 64 / N;
  int cbsz = in->imm & 7, abid = (in->imm >> 4) & 15, blgp = (in->imm >> 8) & 7;
  /* CBSZ/ABID broadcast one of several A blocks; these bf16 MFMAs have a single block, for which the ISA
   * leaves nonzero values undefined (docs/facts.md §1.7): refuse rather than invent a result. */
  if (cbsz || abid)
    return fail(c, E_INVALID, 0, "MFMA with CBSZ %d / ABID %d: undefined for a single-block MFMA", cbsz, abid);
  if (in->src[0] < 256 || in->src[1] < 256)
    return fail(c, E_INVALID, 0, "MFMA A and B operands must be vector registers");
  int ra = in->src[0] - 256, rb = in->src[1] - 256;
  if (check_v(c, w, ra, nab, 0) || check_v(c, w, rb, nab, 0)) return 1;
  c->role = ROLE_SRCC;
  int bad = in->src[2] >= 256 && check_v(c, w, in->src[2] - 256, ncd, 0);
  c->role = ROLE_PLAIN;
  if (bad || vdst_check(c, w, in->dst, ncd)) return 1;
  /* the lane each lane takes its A and B values from (CBSZ/ABID broadcast, BLGP permutation) */
  int S = 64 >> cbsz, la_of[LANES], lb_of[LANES];
  for (int l = 0; l < LANES; l++) {
    la_of[l] = cbsz ? (l % S) + S * abid : l;
    lb_of[l] = blgp_lane(l, blgp);
  }
  /* At[k][i] = A[i][k] and B[k][j], from lane i + M*q (j + N*q), element it (mfma_element), k = KL*q + it.
   * The elements (bf16, f16, fp8, bf8, i8) and their products are exact in double. */
  const op_entry *e = &OPS[in->op];
  int ea = e->elem_a, eb = e->elem_b, integer = ea == EL_I8;
  double At[64][32], B[64][32], D[32][32];
  const uint32_t *va = &w->v[(size_t)ra * LANES], *vb = &w->v[(size_t)rb * LANES];
  if (ea == EL_BF16 && eb == EL_BF16) {
    for (int it = 0; it < KL; it++) {
      int sh = 16 * (it % 2);
      const uint32_t *ra_it = va + (size_t)(it / 2) * LANES, *rb_it = vb + (size_t)(it / 2) * LANES;
      for (int q = 0; q < LANES / M; q++)
        for (int i = 0; i < M; i++) At[KL * q + it][i] = f32(((ra_it[la_of[i + M * q]] >> sh) & 0xFFFF) << 16);
      for (int q = 0; q < LANES / N; q++)
        for (int j = 0; j < N; j++) B[KL * q + it][j] = f32(((rb_it[lb_of[j + N * q]] >> sh) & 0xFFFF) << 16);
    }
  } else {
    for (int it = 0; it < KL; it++) {
      for (int q = 0; q < LANES / M; q++)
        for (int i = 0; i < M; i++) At[KL * q + it][i] = mfma_element(va, la_of[i + M * q], it, ea);
      for (int q = 0; q < LANES / N; q++)
        for (int j = 0; j < N; j++) B[KL * q + it][j] = mfma_element(vb, lb_of[j + N * q], it, eb);
    }
  }
  /* C and D share the lane/register map: D[i][j] at lane j + N*((i/4) % MI), register (i%4) + 4*(i/(4*MI)). */
  uint32_t cconst = 0;
  if (in->src[2] < 256 && sval(c, w, in, in->src[2], &cconst)) return 1;
  for (int i = 0; i < M; i++) {
    int lane0 = N * ((i / 4) % MI), reg = (i % 4) + 4 * (i / (4 * MI));
    if (in->src[2] >= 256) {
      const uint32_t *row = &w->v[(size_t)(in->src[2] - 256 + reg) * LANES + lane0];
      for (int j = 0; j < N; j++) D[i][j] = integer ? (double)(int32_t)row[j] : f32(row[j]);
    } else {
      for (int j = 0; j < N; j++) D[i][j] = integer ? (double)(int32_t)cconst : f32(cconst);
    }
  }
  /* i8: products below 2^14 and sums of 64 of them with a 32-bit C are exact in double, wrapped below */
  if (c->L->mfma_model == MFMA_CDNA3 && ea == EL_BF16 && eb == EL_BF16) mfma_sum_cdna3(D, At, B, M, N, K);
  else if (N == 16) mfma_sum16(D, At, B, M, K);
  else mfma_sum32(D, At, B, M, K);
  uint32_t out[16 * LANES];
  for (int i = 0; i < M; i++) {
    int lane0 = N * ((i / 4) % MI), reg = (i % 4) + 4 * (i / (4 * MI));
    for (int j = 0; j < N; j++) /* one RNE rounding; i8: the sum modulo 2^32 */
      out[reg * LANES + lane0 + j] = integer ? (uint32_t)(int64_t)D[i][j] : u32f((float)D[i][j]);
  }
  for (int r = 0; r < ncd; r++) memcpy(vrow(w, in->dst + r), out + r * LANES, LANES * 4); /* EXEC ignored */
  return 0;
}

/* ---------------------------------------------------------------- VALU */

static inline float fmod_src(const insn_t *in, int i, float x) {
  if (in->flags & (1u << F_SDWA)) {
    int neg = i == 0 ? (in->flags2 >> SDWA_SRC0_NEG) & 1 : (in->flags2 >> SDWA_SRC1_NEG) & 1;
    int ab = i == 0 ? (in->flags2 >> SDWA_SRC0_ABS) & 1 : (in->flags2 >> SDWA_SRC1_ABS) & 1;
    if (ab) x = fabsf(x);
    if (neg) x = -x;
    return x;
  }
  if (in->flags >> (F_ABS + i) & 1) x = fabsf(x);
  if (in->flags >> (F_NEG + i) & 1) x = -x;
  return x;
}

static inline float fpost(const insn_t *in, float x) {
  int omod = (in->flags >> F_OMOD) & 3;
  if (omod == 1) x *= 2.0f;
  else if (omod == 2) x *= 4.0f;
  else if (omod == 3) x *= 0.5f;
  if (in->flags >> F_CLAMP & 1) x = x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f);
  return x;
}

/* a float compare by condition (isa._CMP_FLOAT order); fp16 and fp32 operands arrive widened, exactly */
static inline int cmp_float(int cond, double a, double b) {
  int un = a != a || b != b;
  switch (cond) {
    case 0: return 0;
    case 1: return a < b;
    case 2: return a == b;
    case 3: return a <= b;
    case 4: return a > b;
    case 5: return a < b || a > b;
    case 6: return a >= b;
    case 7: return !un;
    case 8: return un;
    case 9: return !(a >= b);
    case 10: return !(a < b || a > b);
    case 11: return !(a > b);
    case 12: return !(a <= b);
    case 13: return !(a == b);
    case 14: return !(a < b);
    default: return 1;
  }
}

#define CMP_INT(cond, a, b) \
  ((cond) == 0 ? 0 : (cond) == 1 ? (a) < (b) : (cond) == 2 ? (a) == (b) : (cond) == 3 ? (a) <= (b) \
   : (cond) == 4 ? (a) > (b) : (cond) == 5 ? (a) != (b) : (cond) == 6 ? (a) >= (b) : 1)

/* The class index of a float for v_cmp_class (docs/facts.md §13.1): 0 sNaN, 1 qNaN, 2 -inf, 3 -normal,
 * 4 -denormal, 5 -0, 6 +0, 7 +denormal, 8 +normal, 9 +inf; any width, from its sign, exponent and mantissa. */
static int float_class(int neg, int exp_all_ones, int exp_zero, int mant_zero, int quiet) {
  if (exp_all_ones) return mant_zero ? (neg ? 2 : 9) : quiet ? 1 : 0;
  if (exp_zero) return mant_zero ? (neg ? 5 : 6) : neg ? 4 : 7;
  return neg ? 3 : 8;
}

static int class_f32(float x, uint32_t m) {
  uint32_t u = u32f(x), e = (u >> 23) & 0xFF, f = u & 0x7FFFFF;
  return (m >> float_class(u >> 31, e == 0xFF, e == 0, f == 0, (f >> 22) & 1)) & 1;
}

static int class_f64(double x, uint32_t m) {
  uint64_t u;
  memcpy(&u, &x, 8);
  uint64_t e = (u >> 52) & 0x7FF, f = u & 0xFFFFFFFFFFFFFull;
  return (m >> float_class((int)(u >> 63), e == 0x7FF, e == 0, f == 0, (int)((f >> 51) & 1))) & 1;
}

static int class_f16(uint16_t u, uint32_t m) {
  uint32_t e = (u >> 10) & 0x1F, f = u & 0x3FF;
  return (m >> float_class(u >> 15, e == 0x1F, e == 0, f == 0, (f >> 9) & 1)) & 1;
}

/* ---- DPP (docs/facts.md §6.4): src0 comes from another lane of the same VGPR */

/* The lane whose src0 value lane l receives under DPP_CTRL `ctrl`; -1 when that lane lies outside the row (or
 * the wave) the control allows, -2 for a reserved control value. */
static int dpp_source_lane(int ctrl, int l) {
  int row = l & ~15, pos = l & 15, n = ctrl & 15;
  if (ctrl <= 0xFF) return (l & ~3) | ((ctrl >> (2 * (l & 3))) & 3); /* quad_perm */
  if (ctrl >= 0x101 && ctrl <= 0x10F) return pos + n < 16 ? l + n : -1; /* row_shl */
  if (ctrl >= 0x111 && ctrl <= 0x11F) return pos >= n ? l - n : -1; /* row_shr */
  if (ctrl >= 0x121 && ctrl <= 0x12F) return row | ((pos - n) & 15); /* row_ror */
  if (ctrl >= 0x150 && ctrl <= 0x15F) return row | n; /* row_newbcast */
  switch (ctrl) {
    case 0x130: return l < LANES - 1 ? l + 1 : -1; /* wave_shl:1 */
    case 0x134: return (l + 1) % LANES; /* wave_rol:1 */
    case 0x138: return l > 0 ? l - 1 : -1; /* wave_shr:1 */
    case 0x13C: return (l + LANES - 1) % LANES; /* wave_ror:1 */
    case 0x140: return row | (15 - pos); /* row_mirror */
    case 0x141: return (l & ~7) | (7 - (l & 7)); /* row_half_mirror */
    case 0x142: return l >= 16 ? row - 1 : -1; /* row_bcast:15, row 0 has no previous row */
    case 0x143: return l >= 32 ? 31 : -1; /* row_bcast:31, rows 0 and 1 have no source */
    default: return -2;
  }
}

/* For each lane its src0 source lane (-1: it reads 0) and the lanes the instruction writes: EXEC lanes whose row
 * and bank are enabled and whose source is valid (in range and in EXEC), or invalid with BOUND_CTRL set. */
static int dpp_lanes(ctx_t *c, wave_t *w, const insn_t *in, int src_of[LANES], uint64_t *write) {
  int ctrl = in->imm & 0x1FF, bound_ctrl = (in->imm >> 11) & 1;
  int bank_mask = (in->imm >> 16) & 0xF, row_mask = (in->imm >> 20) & 0xF;
  uint64_t exec = exec_of(w), m = 0;
  for (int l = 0; l < LANES; l++) {
    int src = dpp_source_lane(ctrl, l);
    if (src == -2) return fail(c, E_INVALID, 0, "reserved DPP_CTRL value %#x", ctrl);
    int valid = src >= 0 && (exec >> src & 1);
    src_of[l] = valid ? src : -1;
    if ((exec >> l & 1) && (row_mask >> (l >> 4) & 1) && (bank_mask >> ((l >> 2) & 3) & 1) && (valid || bound_ctrl))
      m |= 1ull << l;
  }
  *write = m;
  return 0;
}

/* Replace row[] by its DPP-fetched values (0 where the source is invalid). */
static void dpp_permute(const int src_of[LANES], uint32_t *row) {
  uint32_t out[LANES];
  for (int l = 0; l < LANES; l++) out[l] = src_of[l] >= 0 ? row[src_of[l]] : 0;
  memcpy(row, out, sizeof out);
}

/* Sources with SDWA selection applied (integer view). */
static int vsrcs(ctx_t *c, wave_t *w, const insn_t *in, int n, uint32_t t[3][LANES], const uint32_t *s[3]) {
  for (int i = 0; i < n; i++) {
    if (in->src[i] < 0) return fail(c, E_INVALID, 0, "missing source operand %d", i);
    if (vsrc(c, w, in, in->src[i], t[i], &s[i])) return 1;
  }
  if (in->flags & (1u << F_DPP)) {
    int src_of[LANES];
    uint64_t write;
    if (dpp_lanes(c, w, in, src_of, &write)) return 1;
    if (s[0] != t[0]) memcpy(t[0], s[0], LANES * 4);
    dpp_permute(src_of, t[0]);
    s[0] = t[0];
  }
  if (in->flags & (1u << F_SDWA)) {
    for (int i = 0; i < n && i < 2; i++) {
      int sel = (in->flags2 >> (i ? SDWA_SRC1_SEL : SDWA_SRC0_SEL)) & 7;
      int sext = (in->flags2 >> (i ? SDWA_SRC1_SEXT : SDWA_SRC0_SEXT)) & 1;
      if (sel == 6) continue;
      uint32_t *o = t[i];
      const uint32_t *src = s[i];
      uint32_t tmp[LANES];
      for (int l = 0; l < LANES; l++) tmp[l] = sdwa_sel(src[l], sel, sext);
      memcpy(o, tmp, sizeof tmp);
      s[i] = o;
    }
  }
  return 0;
}

static uint32_t perm_byte(uint64_t data, uint32_t sel) {
  sel &= 0xFF;
  if (sel < 8) return (uint32_t)(data >> (8 * sel)) & 0xFF;
  if (sel < 12) return ((data >> (8 * (2 * (sel - 8) + 1) + 7)) & 1) ? 0xFF : 0x00;
  if (sel == 12) return 0;
  return 0xFF;
}

/* DPP forms the core does not run (the opcode table's .dpp, from isa.py): gfx950 has no DPP form of a VOPC
 * compare (llvm-mc: "dpp variant of this instruction is not supported"), nor of v_readfirstlane_b32,
 * v_accvgpr_mov_b32 and v_nop; 64-bit operands take only row_newbcast (docs/facts.md §6.4). */
static int dpp_refused(ctx_t *c, const insn_t *in) {
  int ctrl = in->imm & 0x1FF;
  switch (OPS[in->op].dpp) {
    case DPP_NONE_VOPC: return fail(c, E_UNIMPL, 0, "DPP form of a VOPC compare: gfx950 has none");
    case DPP_NONE: return fail(c, E_UNIMPL, 0, "DPP form of an instruction that has none on gfx950");
    case DPP_ROW_NEWBCAST:
      if (!(ctrl >= 0x150 && ctrl <= 0x15F))
        return fail(c, E_UNIMPL, 0,
                    "64-bit DPP with DPP_CTRL %#x: only row_newbcast is defined for 64-bit operands", ctrl);
      return 0;
    case DPP_NOT_VOP12: return fail(c, E_UNIMPL, 0, "DPP form of an instruction that is not VOP1/VOP2");
    default: return 0;
  }
}

/* Every VALU handler starts here: the lanes the instruction writes are EXEC's, less those DPP leaves unwritten
 * (they behave as EXEC-off lanes); src_of receives each lane's DPP source lane. */
static int valu_lanes(ctx_t *c, wave_t *w, const insn_t *in, uint64_t *exec, int src_of[LANES]) {
  *exec = exec_of(w);
  if (!(in->flags & (1u << F_DPP))) return 0;
  if (dpp_refused(c, in)) return 1;
  return dpp_lanes(c, w, in, src_of, exec);
}

static int valu_unhandled(ctx_t *c) {
  return fail(c, E_UNIMPL, 0, "vector instruction not implemented by the execution core");
}

/* ---- the one-result form: up to three 32-bit sources (as many as the record names), one 32-bit result */

typedef struct {
  uint64_t exec;         /* the lanes written */
  uint32_t t[3][LANES];  /* room for broadcast or SDWA-selected sources */
  const uint32_t *s[3];  /* the sources' rows; a source the record does not name reads 0 */
} valu32_t;

static const uint32_t ZERO_ROW[LANES];

static int valu32_operands(ctx_t *c, wave_t *w, const insn_t *in, valu32_t *o) {
  int src_of[LANES];
  if (valu_lanes(c, w, in, &o->exec, src_of)) return 1;
  int nsrc = in->src[2] >= 0 ? 3 : in->src[1] >= 0 ? 2 : 1;
  if (vsrcs(c, w, in, nsrc, o->t, o->s) || vdst_check(c, w, in->dst, 1)) return 1;
  for (int i = nsrc; i < 3; i++) o->s[i] = ZERO_ROW;
  return 0;
}

/* Each family below runs its ops lane by lane on x, y, z (the sources) into r. The f32 views apply the source
 * modifiers; FR applies output modifier and clamp. */
#define FA fmod_src(in, 0, f32(x))
#define FB fmod_src(in, 1, f32(y))
#define FC fmod_src(in, 2, f32(z))
#define FR(e) r = u32f(fpost(in, (e)))

#define MED3(a, b, c) ((a) > (b) ? ((b) > (c) ? (b) : (a) > (c) ? (c) : (a)) : ((a) > (c) ? (a) : (b) > (c) ? (c) : (b)))
#define SAT(v, lo, hi) ((v) < (lo) ? (lo) : (v) > (hi) ? (hi) : (v))

/* float -> 32-bit integer, truncating: NaN gives 0, out-of-range values saturate */
static inline uint32_t d_to_i32(double x) { return x != x ? 0 : (uint32_t)(int32_t)trunc(SAT(x, -2147483648.0, 2147483647.0)); }
static inline uint32_t d_to_u32(double x) { return x != x ? 0 : (uint32_t)trunc(SAT(x, 0.0, 4294967295.0)); }

/* The cubemap face of the direction (x, y, z) (V_CUBEID/SC/TC/MA_F32, docs/facts.md §6.11): the major axis is z when
 * |z| is the largest, else y when |y| >= |x|, else x; the op picks the face id, the face's s or t coordinate, or twice
 * the major-axis coordinate. */
static float cube(int op, float x, float y, float z) {
  float id, sc, tc, ma;
  if (fabsf(z) >= fabsf(x) && fabsf(z) >= fabsf(y)) id = z < 0 ? 5 : 4, sc = z < 0 ? -x : x, tc = -y, ma = z;
  else if (fabsf(y) >= fabsf(x)) id = y < 0 ? 3 : 2, sc = x, tc = y < 0 ? -z : z, ma = y;
  else id = x < 0 ? 1 : 0, sc = x < 0 ? z : -z, tc = -y, ma = x;
  switch (op) {
    case OP_V_CUBEID_F32: return id;
    case OP_V_CUBESC_F32: return sc;
    case OP_V_CUBETC_F32: return tc;
    default: return ma * 2.0f;
  }
}

/* sin / cos of 2*pi*x, x in revolutions (V_SIN/COS_F32, docs/facts.md §6.11). The fraction of x (exact in double)
 * is split into quarter turns, so multiples of a quarter turn give exact results; the rest is one libm call in
 * double, rounded once to fp32. A zero result is +0 unless x is -0 (the ISA's examples); inf gives NaN. */
static float sincos_rev(float x, int cosine) {
  if (x != x) return x + x;
  if (isinf(x)) return f32(0xFFC00000u);
  if (x == 0) return cosine ? 1.0f : x;
  double t = 4.0 * ((double)x - nearbyint((double)x)), q = nearbyint(t), a = (t - q) * (M_PI / 2);
  int k = ((int)q + cosine) & 3; /* cos(a) = sin(a + a quarter turn) */
  float r = (float)(k == 0 ? sin(a) : k == 1 ? cos(a) : k == 2 ? -sin(a) : -cos(a));
  return r == 0 ? 0.0f : r;
}

static int valu_f32(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op;
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t x = o.s[0][l], y = o.s[1][l], z = o.s[2][l], r;
    switch (op) {
      case OP_V_ADD_F32: FR(FA + FB); break;
      case OP_V_SUB_F32: FR(FA - FB); break;
      case OP_V_SUBREV_F32: FR(FB - FA); break;
      case OP_V_MUL_F32: FR(FA * FB); break;
      case OP_V_MIN_F32: FR(ieee_min(FA, FB)); break;
      case OP_V_MAX_F32: FR(ieee_max(FA, FB)); break;
      case OP_V_FMA_F32: FR(fmaf(FA, FB, FC)); break;
      case OP_V_FMAC_F32: FR(fmaf(FA, FB, f32(z))); break;
      case OP_V_MIN3_F32: FR(ieee_min(ieee_min(FA, FB), FC)); break;
      case OP_V_MAX3_F32: FR(ieee_max(ieee_max(FA, FB), FC)); break;
      case OP_V_MED3_F32: FR(ieee_med3(FA, FB, FC)); break;
      case OP_V_LDEXP_F32: FR(ldexpf(FA, (int32_t)y)); break;
      case OP_V_EXP_F32: FR(exp2f(FA)); break;
      case OP_V_LOG_F32: FR(log2f(FA)); break;
      case OP_V_RCP_F32: case OP_V_RCP_IFLAG_F32: FR(1.0f / FA); break;
      case OP_V_RSQ_F32: FR(1.0f / sqrtf(FA)); break;
      case OP_V_SQRT_F32: FR(sqrtf(FA)); break;
      case OP_V_FRACT_F32: { /* S0 - floor(S0), at most 0x3f7fffff; NaN (and inf - inf) propagate */
        float p = FA, fr = p - floorf(p);
        FR(fr > 0x1.fffffep-1f ? 0x1.fffffep-1f : fr);
        break;
      }
      case OP_V_TRUNC_F32: FR(truncf(FA)); break;
      case OP_V_CEIL_F32: FR(ceilf(FA)); break;
      case OP_V_RNDNE_F32: FR(nearbyintf(FA)); break;
      case OP_V_FLOOR_F32: FR(floorf(FA)); break;
      case OP_V_FMAMK_F32: case OP_V_FMAAK_F32: /* the literal K is the source the decoder put it in */
        if (in->flags & (1u << F_VOP3)) return fail(c, E_INVALID, 0, "v_fmamk/fmaak_f32 have no VOP3 form");
        FR(fmaf(FA, FB, FC));
        break;
      case OP_V_MUL_LEGACY_F32: FR(FA == 0.0f || FB == 0.0f ? 0.0f : FA * FB); break; /* DX9: 0 * anything = +0 */
      case OP_V_MINIMUM3_F32: FR(ieee_minimum(ieee_minimum(FA, FB), FC)); break;
      case OP_V_MAXIMUM3_F32: FR(ieee_maximum(ieee_maximum(FA, FB), FC)); break;
      case OP_V_CUBEID_F32: case OP_V_CUBESC_F32: case OP_V_CUBETC_F32: case OP_V_CUBEMA_F32:
        FR(cube(op, FA, FB, FC));
        break;
      case OP_V_SIN_F32: FR(sincos_rev(FA, 0)); break;
      case OP_V_COS_F32: FR(sincos_rev(FA, 1)); break;
      case OP_V_CVT_OFF_F32_I4: FR((float)((int32_t)(x << 28) >> 28) * 0.0625f); break; /* S0[3:0] signed, / 16 */
      default: return valu_unhandled(c);
    }
    res[l] = r;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

/* f32 -> u8 as v_cvt_pk_u8_f32 converts (docs/facts.md §6.11): rounded to nearest even, saturated, NaN -> 0 */
static inline uint32_t f_to_u8(float x) { return x != x ? 0 : (uint32_t)nearbyintf(SAT(x, 0.0f, 255.0f)); }

/* f32 -> normalized 16-bit integer: clamp to [-1, 1] ([0, 1] unsigned), scale, round to nearest even. */
static inline uint32_t f_to_norm(double x, int sign) {
  if (x != x) return 0;
  return (uint32_t)(int32_t)nearbyint(SAT(x, sign ? -1.0 : 0.0, 1.0) * (sign ? 32767.0 : 65535.0)) & 0xFFFF;
}

static int valu_convert(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op;
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t x = o.s[0][l], y = o.s[1][l], r;
    switch (op) {
      case OP_V_CVT_F32_I32: FR((float)(int32_t)x); break;
      case OP_V_CVT_F32_U32: FR((float)x); break;
      case OP_V_CVT_F32_BF16: FR(f32((x & 0xFFFF) << 16)); break;
      case OP_V_CVT_U32_F32: r = d_to_u32(FA); break;
      case OP_V_CVT_I32_F32: r = d_to_i32(FA); break;
      case OP_V_CVT_F16_F32: r = f16_bits((_Float16)FA); break;
      case OP_V_CVT_F32_UBYTE0: case OP_V_CVT_F32_UBYTE1: case OP_V_CVT_F32_UBYTE2: case OP_V_CVT_F32_UBYTE3:
      { /* byte n of S0 as a float */
        int n = op == OP_V_CVT_F32_UBYTE0 ? 0 : op == OP_V_CVT_F32_UBYTE1 ? 1 : op == OP_V_CVT_F32_UBYTE2 ? 2 : 3;
        FR((float)((x >> (8 * n)) & 0xFF));
        break;
      }
      case OP_V_CVT_RPI_I32_F32: r = d_to_i32(floor((double)FA + 0.5)); break; /* saturated as cvt_i32 */
      case OP_V_CVT_FLR_I32_F32: r = d_to_i32(floor((double)FA)); break;
      case OP_V_FREXP_EXP_I32_F32: { /* the exponent of S0 as frexp gives it; 0 for zero, inf and NaN */
        float p = FA;
        int e = 0;
        if (!isinf(p) && p == p) frexpf(p, &e);
        r = (uint32_t)e;
        break;
      }
      case OP_V_FREXP_MANT_F32: { /* the mantissa in [0.5, 1) with S0's sign; inf and NaN pass through */
        float p = FA;
        int e;
        FR(isinf(p) || p != p ? p : frexpf(p, &e));
        break;
      }
      case OP_V_CVT_PK_BF16_F32: r = bf16_rne(FA) | (bf16_rne(FB) << 16); break;
      case OP_V_CVT_PKRTZ_F16_F32: r = f16_rtz(FA) | ((uint32_t)f16_rtz(FB) << 16); break;
      case OP_V_PACK_B32_F16: {
        int os = (in->flags >> F_OPSEL) & 3;
        uint32_t lo = (os & 1) ? x >> 16 : x & 0xFFFF, hi = (os & 2) ? y >> 16 : y & 0xFFFF;
        r = lo | (hi << 16);
        break;
      }
      case OP_V_CVT_PK_U8_F32: case OP_V_CVT_PKACCUM_U8_F32: { /* byte S1[1:0] of S2 (pkaccum: of D) := u8(S0) */
        uint32_t sh = 8 * (y & 3), base = op == OP_V_CVT_PK_U8_F32 ? o.s[2][l] : vrow(w, in->dst)[l];
        r = (base & ~(0xFFu << sh)) | f_to_u8(FA) << sh;
        break;
      }
      case OP_V_CVT_PKNORM_I16_F32: r = f_to_norm(FA, 1) | f_to_norm(FB, 1) << 16; break;
      case OP_V_CVT_PKNORM_U16_F32: r = f_to_norm(FA, 0) | f_to_norm(FB, 0) << 16; break;
      case OP_V_CVT_PK_U16_U32: r = (x > 0xFFFF ? 0xFFFF : x) | (y > 0xFFFF ? 0xFFFF : y) << 16; break; /* saturating */
      case OP_V_CVT_PK_I16_I32:
        r = ((uint32_t)SAT((int32_t)x, -32768, 32767) & 0xFFFF) | (uint32_t)SAT((int32_t)y, -32768, 32767) << 16;
        break;
      default: return valu_unhandled(c);
    }
    res[l] = r;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

/* ---- the low-precision conversions (docs/facts.md §1.15), each described by lowp_convert_of():
 * from/to: element formats (NF_*); n: elements per lane; sr: stochastic rounding with S1's random word;
 * scaled: the last source's fp32 exponent is an E8M0 scale (dividing on the way to a narrow format, multiplying
 * on the way back); pair: the 2xpk16 forms, whose elements alternate between S0 and S1.
 * The rest follows from the sizes: n f32 elements in two sources when n = 2 and not sr (else in S0's registers);
 * a result of 8 bits goes to the byte OPSEL[3:2] selects, of 16 bits to the half OPSEL[3] selects (the rest of the
 * register is kept), a wider one fills registers; a narrow source of 8 bits is the byte OPSEL[1:0] selects, of 16
 * bits the half OPSEL[0] selects. */
typedef struct {
  uint8_t from, to, n, sr, scaled, pair;
} lowp_t;

static int lowp_convert_of(int op, lowp_t *d) {
  switch (op) {
#define LP(name, from, to, n, sr, scaled) case OP_V_CVT_##name: *d = (lowp_t){from, to, n, sr, scaled, 0}; return 1;
#define LPS(name, from, to, n) LP(SCALEF32_##name, from, to, n, 0, 1)
#define LPSR(name, from, to, n) LP(SCALEF32_##name, from, to, n, 1, 1)
    LP(F32_FP8, NF_FP8, NF_F32, 1, 0, 0) LP(F32_BF8, NF_BF8, NF_F32, 1, 0, 0)
    LP(PK_F32_FP8, NF_FP8, NF_F32, 2, 0, 0) LP(PK_F32_BF8, NF_BF8, NF_F32, 2, 0, 0)
    LP(PK_FP8_F32, NF_F32, NF_FP8, 2, 0, 0) LP(PK_BF8_F32, NF_F32, NF_BF8, 2, 0, 0)
    LP(SR_FP8_F32, NF_F32, NF_FP8, 1, 1, 0) LP(SR_BF8_F32, NF_F32, NF_BF8, 1, 1, 0)
    LP(SR_F16_F32, NF_F32, NF_F16, 1, 1, 0) LP(SR_BF16_F32, NF_F32, NF_BF16, 1, 1, 0)
    LP(PK_F16_F32, NF_F32, NF_F16, 2, 0, 0)
    LPS(PK_FP8_F32, NF_F32, NF_FP8, 2) LPS(PK_BF8_F32, NF_F32, NF_BF8, 2)
    LPSR(SR_FP8_F32, NF_F32, NF_FP8, 1) LPSR(SR_BF8_F32, NF_F32, NF_BF8, 1)
    LPS(PK_F32_FP8, NF_FP8, NF_F32, 2) LPS(PK_F32_BF8, NF_BF8, NF_F32, 2)
    LPS(F32_FP8, NF_FP8, NF_F32, 1) LPS(F32_BF8, NF_BF8, NF_F32, 1)
    LPS(PK_FP4_F32, NF_F32, NF_FP4, 2) LPSR(SR_PK_FP4_F32, NF_F32, NF_FP4, 2) LPS(PK_F32_FP4, NF_FP4, NF_F32, 2)
    LPS(PK_FP8_F16, NF_F16, NF_FP8, 2) LPS(PK_BF8_F16, NF_F16, NF_BF8, 2)
    LPSR(SR_FP8_F16, NF_F16, NF_FP8, 1) LPSR(SR_BF8_F16, NF_F16, NF_BF8, 1)
    LPS(PK_FP8_BF16, NF_BF16, NF_FP8, 2) LPS(PK_BF8_BF16, NF_BF16, NF_BF8, 2)
    LPSR(SR_FP8_BF16, NF_BF16, NF_FP8, 1) LPSR(SR_BF8_BF16, NF_BF16, NF_BF8, 1)
    LPS(PK_F16_FP8, NF_FP8, NF_F16, 2) LPS(PK_F16_BF8, NF_BF8, NF_F16, 2)
    LPS(F16_FP8, NF_FP8, NF_F16, 1) LPS(F16_BF8, NF_BF8, NF_F16, 1)
    LPS(PK_BF16_FP8, NF_FP8, NF_BF16, 2) LPS(PK_BF16_BF8, NF_BF8, NF_BF16, 2)
    LPS(PK_FP4_F16, NF_F16, NF_FP4, 2) LPS(PK_FP4_BF16, NF_BF16, NF_FP4, 2)
    LPSR(SR_PK_FP4_F16, NF_F16, NF_FP4, 2) LPSR(SR_PK_FP4_BF16, NF_BF16, NF_FP4, 2)
    LPS(PK_F16_FP4, NF_FP4, NF_F16, 2) LPS(PK_BF16_FP4, NF_FP4, NF_BF16, 2)
    LPSR(SR_PK32_FP6_F32, NF_F32, NF_FP6, 32) LPSR(SR_PK32_BF6_F32, NF_F32, NF_BF6, 32)
    LPS(PK32_F32_FP6, NF_FP6, NF_F32, 32) LPS(PK32_F32_BF6, NF_BF6, NF_F32, 32)
    LPS(PK32_FP6_F16, NF_F16, NF_FP6, 32) LPS(PK32_FP6_BF16, NF_BF16, NF_FP6, 32)
    LPS(PK32_BF6_F16, NF_F16, NF_BF6, 32) LPS(PK32_BF6_BF16, NF_BF16, NF_BF6, 32)
    LPSR(SR_PK32_FP6_F16, NF_F16, NF_FP6, 32) LPSR(SR_PK32_FP6_BF16, NF_BF16, NF_FP6, 32)
    LPSR(SR_PK32_BF6_F16, NF_F16, NF_BF6, 32) LPSR(SR_PK32_BF6_BF16, NF_BF16, NF_BF6, 32)
    LPS(PK32_F16_FP6, NF_FP6, NF_F16, 32) LPS(PK32_BF16_FP6, NF_FP6, NF_BF16, 32)
    LPS(PK32_F16_BF6, NF_BF6, NF_F16, 32) LPS(PK32_BF16_BF6, NF_BF6, NF_BF16, 32)
#undef LPSR
#undef LPS
#undef LP
    case OP_V_CVT_SCALEF32_2XPK16_FP6_F32: *d = (lowp_t){NF_F32, NF_FP6, 32, 0, 1, 1}; return 1;
    case OP_V_CVT_SCALEF32_2XPK16_BF6_F32: *d = (lowp_t){NF_F32, NF_BF6, 32, 0, 1, 1}; return 1;
    default: return 0;
  }
}

static inline uint32_t prng_next(uint32_t r) { return (r << 1) ^ (r >> 31 ? 197u : 0u); } /* V_PRNG_B32 */

static int valu_lowp_convert(ctx_t *c, wave_t *w, const insn_t *in) {
  lowp_t d;
  if (!lowp_convert_of(in->op, &d)) return valu_unhandled(c);
  int wf = NF[d.from].bits, wt = NF[d.to].bits, narrow_in = d.from <= NF_FP4;
  int in_bits = d.n * wf, out_bits = d.n * wt;
  int nvals = d.pair || (d.from == NF_F32 && d.n == 2 && !d.sr) ? 2 : 1; /* sources holding the elements */
  int vregs = in_bits / 32 / nvals > 1 ? in_bits / 32 / nvals : 1, oregs = out_bits > 32 ? out_bits / 32 : 1;
  int nsrc = nvals + d.sr + d.scaled;
  /* the unscaled conversions from fp32 but v_cvt_pk_f16_f32 "ignore clamp, omod" (CDNA4 ISA Table 31); on the
   * others their effect is not documented */
  int ignores_mods = !d.scaled && !narrow_in && (d.to <= NF_BF8 || d.sr);
  if (!ignores_mods && (in->flags >> F_CLAMP & 1 || in->flags >> F_OMOD & 3))
    return fail(c, E_UNIMPL, 0, "clamp or an output modifier on %s: not modelled", OP_NAME[in->op]);
  for (int i = 0; i < nsrc; i++)
    if (in->src[i] < 0) return fail(c, E_INVALID, 0, "%s is missing source %d", OP_NAME[in->op], i);
  /* one-register sources (with DPP and SDWA applied, VOP1 forms) and the registers of multi-register ones */
  valu32_t o;
  const uint32_t *src[3];
  if (vregs == 1) {
    if (valu32_operands(c, w, in, &o)) return 1;
    for (int i = 0; i < 3; i++) src[i] = o.s[i];
  } else {
    int src_of[LANES];
    if (valu_lanes(c, w, in, &o.exec, src_of)) return 1;
    for (int i = 0; i < nsrc; i++) {
      int n = i < nvals ? vregs : 1;
      if (n > 1 && in->src[i] < 256)
        return fail(c, E_INVALID, 0, "%s: source %d spans %d registers and must be a VGPR", OP_NAME[in->op], i, n);
      if (n > 1 ? check_v(c, w, in->src[i] - 256, n, 0) : vsrc(c, w, in, in->src[i], o.t[i], &src[i])) return 1;
      if (n > 1) src[i] = vrow(w, in->src[i]);
    }
  }
  if (vdst_check(c, w, in->dst, oregs)) return 1;
  int opsel = (in->flags >> F_OPSEL) & 15;
  int in_shift = in_bits == 8 ? 8 * (opsel & 3) : in_bits == 16 ? 16 * (opsel & 1) : 0;
  int out_shift = out_bits == 8 ? 8 * (opsel >> 2) : out_bits == 16 ? 16 * (opsel >> 3) : 0;
  uint32_t res[32][LANES];
  const uint32_t *old = vrow(w, in->dst);
  for (int l = 0; l < LANES; l++) {
    int sexp = d.scaled ? (src[nsrc - 1][l] >> 23) & 0xFF : 127;
    double scale = d.scaled ? e8m0((uint32_t)sexp) : 1.0;
    uint32_t random = d.sr ? src[nvals][l] : 0, packed[32] = {0};
    for (int e = 0; e < d.n; e++) {
      uint32_t code;
      if (narrow_in) { /* decode, scale up, round to the wide format */
        double v = nf_decode(lane_bits(src[0], l, in_shift + e * wf, wf), d.from) * scale;
        code = d.to == NF_F32 ? u32f((float)v) : nf_encode(v, d.to, NF_RNE);
      } else { /* widen exactly, apply the source's modifiers, scale down, round to the narrow format */
        int s = d.pair ? e % 2 : nvals == 2 ? e : 0, k = d.pair ? e / 2 : nvals == 2 ? 0 : e;
        double x;
        if (d.from == NF_F32) x = f32(src[s][(size_t)k * LANES + l]);
        else {
          uint32_t word = src[s][(size_t)(k / 2) * LANES + l], half = d.n == 1 ? opsel & 1 : k % 2;
          x = nf_decode(word >> (16 * half) & 0xFFFF, d.from);
        }
        if (in->flags >> (F_ABS + s) & 1) x = fabs(x);
        if (in->flags >> (F_NEG + s) & 1) x = -x;
        double v = x / scale;
        if (d.sr) {
          code = nf_encode_sr((float)v, d.to, random);
          random = prng_next(random);
        } else
          code = nf_encode(v, d.to, NF_RNE);
      }
      int off = e * wt;
      packed[off / 32] |= code << (off % 32);
      if (off % 32 + wt > 32) packed[off / 32 + 1] |= code >> (32 - off % 32);
    }
    if (out_bits < 32) { /* into the selected byte or half; the rest of the register is kept */
      uint32_t field = ((1u << out_bits) - 1) << out_shift;
      res[0][l] = (old[l] & ~field) | (packed[0] << out_shift);
    } else
      for (int r = 0; r < oregs; r++) res[r][l] = packed[r];
  }
  for (int r = 0; r < oregs; r++) vwrite(w, in, in->dst + r, res[r], o.exec);
  return 0;
}

/* V_MSAD_U8 (docs/facts.md §6.11): S2 + the sum of |S0 - S1| over the bytes whose reference byte (S1's) is not 0 */
static inline uint32_t msad_u8(uint32_t x, uint32_t y, uint32_t z) {
  for (int sh = 0; sh < 32; sh += 8) {
    uint32_t a = (x >> sh) & 0xFF, b = (y >> sh) & 0xFF;
    if (b) z += a > b ? a - b : b - a;
  }
  return z;
}

static inline uint32_t sad_u8(uint32_t x, uint32_t y, uint32_t z) {
  for (int sh = 0; sh < 32; sh += 8) {
    uint32_t a = (x >> sh) & 0xFF, b = (y >> sh) & 0xFF;
    z += a > b ? a - b : b - a;
  }
  return z;
}

/* a 16-bit result into the half of D that VOP3 OP_SEL[3] picks, the other half kept */
static inline uint32_t half16(const insn_t *in, uint32_t old, uint32_t h) {
  return (in->flags >> (F_OPSEL + 3) & 1) ? (old & 0xFFFF) | h << 16 : (old & 0xFFFF0000u) | (h & 0xFFFF);
}

static int valu_int(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op, clamp = in->flags >> F_CLAMP & 1;
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t x = o.s[0][l], y = o.s[1][l], z = o.s[2][l], r;
    switch (op) {
      case OP_V_ADD_U32: { uint64_t q = (uint64_t)x + y; r = clamp && (q >> 32) ? 0xFFFFFFFFu : (uint32_t)q; break; }
      case OP_V_SUB_U32: r = clamp && x < y ? 0 : x - y; break;
      case OP_V_SUBREV_U32: r = clamp && y < x ? 0 : y - x; break;
      case OP_V_MUL_I32_I24: r = (uint32_t)((int32_t)(x << 8) >> 8) * (uint32_t)((int32_t)(y << 8) >> 8); break;
      case OP_V_MUL_HI_I32_I24:
        r = (uint32_t)(((int64_t)((int32_t)(x << 8) >> 8) * (int64_t)((int32_t)(y << 8) >> 8)) >> 32);
        break;
      case OP_V_MUL_U32_U24: r = (x & 0xFFFFFF) * (y & 0xFFFFFF); break;
      case OP_V_MUL_HI_U32_U24: r = (uint32_t)(((uint64_t)(x & 0xFFFFFF) * (y & 0xFFFFFF)) >> 32); break;
      case OP_V_MAD_U32_U24: r = (x & 0xFFFFFF) * (y & 0xFFFFFF) + z; break;
      case OP_V_MAD_I32_I24: r = (uint32_t)((int32_t)(x << 8) >> 8) * (uint32_t)((int32_t)(y << 8) >> 8) + z; break;
      case OP_V_MUL_LO_U32: r = x * y; break;
      case OP_V_MUL_HI_U32: r = (uint32_t)(((uint64_t)x * y) >> 32); break;
      case OP_V_MUL_HI_I32: r = (uint32_t)(((int64_t)(int32_t)x * (int32_t)y) >> 32); break;
      case OP_V_MIN_I32: r = (int32_t)x < (int32_t)y ? x : y; break;
      case OP_V_MAX_I32: r = (int32_t)x > (int32_t)y ? x : y; break;
      case OP_V_MIN_U32: r = x < y ? x : y; break;
      case OP_V_MAX_U32: r = x > y ? x : y; break;
      case OP_V_MIN3_I32: {
        int32_t p = (int32_t)x < (int32_t)y ? (int32_t)x : (int32_t)y;
        r = (uint32_t)(p < (int32_t)z ? p : (int32_t)z);
        break;
      }
      case OP_V_MAX3_I32: {
        int32_t p = (int32_t)x > (int32_t)y ? (int32_t)x : (int32_t)y;
        r = (uint32_t)(p > (int32_t)z ? p : (int32_t)z);
        break;
      }
      case OP_V_MIN3_U32: { uint32_t p = x < y ? x : y; r = p < z ? p : z; break; }
      case OP_V_MAX3_U32: { uint32_t p = x > y ? x : y; r = p > z ? p : z; break; }
      case OP_V_MED3_I32: {
        int32_t p = (int32_t)x, q = (int32_t)y, u = (int32_t)z;
        int32_t mx = p > q ? p : q, mn = p < q ? p : q;
        r = (uint32_t)(u > mx ? mx : u < mn ? mn : u);
        break;
      }
      case OP_V_MED3_U32: {
        uint32_t mx = x > y ? x : y, mn = x < y ? x : y;
        r = z > mx ? mx : z < mn ? mn : z;
        break;
      }
      case OP_V_LSHL_ADD_U32: r = (x << (y & 31)) + z; break;
      case OP_V_ADD_LSHL_U32: r = (x + y) << (z & 31); break;
      case OP_V_ADD3_U32: r = x + y + z; break;
      case OP_V_XAD_U32: r = (x ^ y) + z; break;
      case OP_V_SAD_U32: r = (x > y ? x - y : y - x) + z; break;
      case OP_V_SAD_U16: case OP_V_SAD_U8: case OP_V_SAD_HI_U8: { /* sums of absolute differences of the parts */
        int bits = op == OP_V_SAD_U16 ? 16 : 8;
        uint32_t m = (1u << bits) - 1, sum = 0;
        for (int sh = 0; sh < 32; sh += bits) {
          uint32_t a = (x >> sh) & m, b = (y >> sh) & m;
          sum += a > b ? a - b : b - a;
        }
        r = (op == OP_V_SAD_HI_U8 ? sum << 16 : sum) + z;
        break;
      }
      case OP_V_LERP_U8: /* per byte: the rounded average, the rounding bit from S2's byte */
        r = 0;
        for (int sh = 0; sh < 32; sh += 8)
          r |= ((((x >> sh) & 0xFF) + ((y >> sh) & 0xFF) + ((z >> sh) & 1)) >> 1) << sh;
        break;
      case OP_V_BFM_B32: r = ((1u << (x & 31)) - 1u) << (y & 31); break;
      case OP_V_ADD_I32: case OP_V_SUB_I32: {
        int64_t t = op == OP_V_ADD_I32 ? (int64_t)(int32_t)x + (int32_t)y : (int64_t)(int32_t)x - (int32_t)y;
        r = (uint32_t)(in->flags >> F_CLAMP & 1 ? SAT(t, INT32_MIN, INT32_MAX) : t);
        break;
      }
      case OP_V_MSAD_U8: r = msad_u8(x, y, z); break;
      case OP_V_ASHR_PK_I8_I32: case OP_V_ASHR_PK_U8_I32: { /* both shifted, saturated to 8 bits, into 16 of D */
        int32_t p = (int32_t)x >> (z & 31), q = (int32_t)y >> (z & 31);
        int sg = op == OP_V_ASHR_PK_I8_I32, lo = sg ? -128 : 0, hi = sg ? 127 : 255;
        uint32_t h = ((uint32_t)SAT(p, lo, hi) & 0xFF) | ((uint32_t)SAT(q, lo, hi) & 0xFF) << 8;
        r = half16(in, vrow(w, in->dst)[l], h);
        break;
      }
      case OP_V_PRNG_B32: r = (x << 1) ^ ((x >> 31) ? 197u : 0u); break; /* one LFSR step */
      default: return valu_unhandled(c);
    }
    res[l] = r;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

static int valu_bit(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op;
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t x = o.s[0][l], y = o.s[1][l], z = o.s[2][l], r;
    switch (op) {
      case OP_V_LSHRREV_B32: r = y >> (x & 31); break;
      case OP_V_ASHRREV_I32: r = (uint32_t)((int32_t)y >> (x & 31)); break;
      case OP_V_LSHLREV_B32: r = y << (x & 31); break;
      case OP_V_AND_B32: r = x & y; break;
      case OP_V_OR_B32: r = x | y; break;
      case OP_V_XOR_B32: r = x ^ y; break;
      case OP_V_XNOR_B32: r = ~(x ^ y); break;
      case OP_V_NOT_B32: r = ~x; break;
      case OP_V_BFREV_B32: {
        uint32_t v = x, b = 0;
        for (int i = 0; i < 32; i++) b |= ((v >> i) & 1u) << (31 - i);
        r = b;
        break;
      }
      case OP_V_FFBH_U32: r = x ? (uint32_t)__builtin_clz(x) : 0xFFFFFFFFu; break;
      case OP_V_FFBH_I32: { /* the first bit from the MSB that differs from the sign bit; -1 for 0 and -1 */
        uint32_t v = (x >> 31) ? ~x : x;
        r = v ? (uint32_t)__builtin_clz(v) : 0xFFFFFFFFu;
        break;
      }
      case OP_V_FFBL_B32: r = x ? (uint32_t)__builtin_ctz(x) : 0xFFFFFFFFu; break;
      case OP_V_BFE_U32: { uint32_t off = y & 31, wdt = z & 31; r = wdt ? (x >> off) & ((1u << wdt) - 1) : 0; break; }
      case OP_V_BFE_I32: {
        uint32_t off = y & 31, wdt = z & 31;
        r = wdt ? (uint32_t)((int32_t)(x << (32 - off - wdt > 31 ? 0 : 32 - off - wdt)) >> (32 - wdt)) : 0;
        if (wdt && off + wdt > 32) r = (uint32_t)((int32_t)x >> off);
        break;
      }
      case OP_V_BFI_B32: r = (x & y) | (~x & z); break;
      case OP_V_ALIGNBIT_B32: r = (uint32_t)((((uint64_t)x << 32) | y) >> (z & 31)); break;
      case OP_V_ALIGNBYTE_B32: r = (uint32_t)((((uint64_t)x << 32) | y) >> (8 * (z & 3))); break;
      case OP_V_LSHL_OR_B32: r = (x << (y & 31)) | z; break;
      case OP_V_AND_OR_B32: r = (x & y) | z; break;
      case OP_V_OR3_B32: r = x | y | z; break;
      case OP_V_PERM_B32: {
        uint64_t data = ((uint64_t)x << 32) | y;
        r = perm_byte(data, z) | perm_byte(data, z >> 8) << 8 | perm_byte(data, z >> 16) << 16 |
            perm_byte(data, z >> 24) << 24;
        break;
      }
      case OP_V_BITOP3_B32: {
        uint32_t tt = ((in->flags >> F_NEG) & 7) | (((in->flags >> F_ABS) & 7) << 3) | (((in->flags >> F_OMOD) & 3) << 6);
        uint32_t b = 0;
        for (int i = 0; i < 8; i++)
          if (tt >> i & 1) {
            uint32_t ma = (i & 4) ? x : ~x, mb = (i & 2) ? y : ~y, mc = (i & 1) ? z : ~z;
            b |= ma & mb & mc;
          }
        r = b;
        break;
      }
      case OP_V_BCNT_U32_B32: r = (uint32_t)__builtin_popcount(x) + y; break;
      case OP_V_BITOP3_B16: { /* 16-bit sources (OP_SEL picks the high halves) into the half OP_SEL[3] picks */
        uint32_t tt = ((in->flags >> F_NEG) & 7) | (((in->flags >> F_ABS) & 7) << 3) | (((in->flags >> F_OMOD) & 3) << 6);
        int os = in->flags >> F_OPSEL;
        uint32_t a = os & 1 ? x >> 16 : x, b2 = os & 2 ? y >> 16 : y, c2 = os & 4 ? z >> 16 : z, b = 0;
        for (int i = 0; i < 8; i++)
          if (tt >> i & 1) b |= ((i & 4) ? a : ~a) & ((i & 2) ? b2 : ~b2) & ((i & 1) ? c2 : ~c2);
        r = half16(in, vrow(w, in->dst)[l], b & 0xFFFF);
        break;
      }
      default: return valu_unhandled(c);
    }
    res[l] = r;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}
/* ---- 16-bit operands and results (docs/facts.md §6.5) */

/* The inline float constants (codes 240-248) of a 16-bit operand are fp16 patterns. */
static const uint16_t INLINE_F16[9] = {0x3800, 0xB800, 0x3C00, 0xBC00, 0x4000, 0xC000, 0x4400, 0xC400, 0x3118};

static inline int is_nan16(uint32_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }
/* MODE's fp16 fields while a 16-bit float op that honours them runs (fp_mode_enter, docs/facts.md §13.4): the
 * rounding (MODE.FP_ROUND's encoding: 0 nearest even, 1 up, 2 down, 3 toward zero) and the flushing of denormal
 * inputs and results; all 0 otherwise. */
static _Thread_local struct { uint8_t round, daz, ftz; } f16_mode;
static int f16_mode_users; /* threads inside such an op: the thread-local f16_mode is read only when nonzero */

static inline int f16_mode_on(void) { return __atomic_load_n(&f16_mode_users, __ATOMIC_RELAXED) != 0; }

static inline double hf(uint32_t h) {
  if (f16_mode_on() && f16_mode.daz && !(h & 0x7C00)) h &= 0x8000; /* a denormal input reads as zero of its sign */
  return (double)f16_of((uint16_t)h);
}

/* r = d rounded to nearest even; moved one fp16 step when MODE rounds otherwise, then flushed if asked (d is the
 * exact result: the 16-bit ops compute in double without rounding) */
static uint32_t h16_in_mode(double d, uint32_t r) {
  double back = (double)f16_of((uint16_t)r);
  int neg = (r & 0x8000) != 0;
  if (d == d && back != d) {
    if (f16_mode.round == 1 && back < d) r = neg ? r - 1 : r + 1;            /* toward +inf */
    else if (f16_mode.round == 2 && back > d) r = neg ? r + 1 : (r ? r - 1 : 0x8001); /* toward -inf */
    else if (f16_mode.round == 3 && fabs(back) > fabs(d)) r = r - 1;          /* toward zero */
  }
  if (f16_mode.ftz && !(r & 0x7C00) && (r & 0x3FF)) r &= 0x8000;
  return r;
}

static inline uint32_t h16(double d) {
  uint32_t r = f16_bits((_Float16)d); /* one rounding, to nearest even */
  return f16_mode_on() && (f16_mode.round | f16_mode.ftz) ? h16_in_mode(d, r) : r;
}

/* Source i's 16 bits: the high half when VOP3 OP_SEL selects it, then abs/neg on the sign bit. */
static inline uint32_t src16(const insn_t *in, int i, uint32_t x, int fp) {
  uint32_t h = ((in->flags & (1u << F_VOP3)) && (in->flags >> (F_OPSEL + i) & 1)) ? x >> 16 : x & 0xFFFF;
  if (!fp) return h;
  return u32f(fmod_src(in, i, f32(h << 16))) >> 16; /* the same modifiers, on the fp16 sign bit */
}

/* Output modifier and clamp, then one rounding to fp16. */
static inline uint32_t hpost(const insn_t *in, double x) {
  int omod = (in->flags >> F_OMOD) & 3;
  if (omod) x *= omod == 1 ? 2.0 : omod == 2 ? 4.0 : 0.5;
  if (in->flags >> F_CLAMP & 1) x = x != x ? 0.0 : fmin(fmax(x, 0.0), 1.0);
  return h16(x);
}

/* V_MIN/V_MAX_F16 with IEEE mode (as the fp32 forms): a signaling NaN becomes quiet, a quiet NaN yields the
 * other operand, -0 < +0, max picks S0 on a tie. On bit patterns, so NaN payloads survive. */
static inline uint32_t hmin(uint32_t a, uint32_t b) {
  if (is_nan16(a) && !(a & 0x200)) return a | 0x200;
  if (is_nan16(b) && !(b & 0x200)) return b | 0x200;
  if (is_nan16(a)) return b;
  if (is_nan16(b)) return a;
  if (((a | b) & 0x7FFF) == 0) return (a & 0x8000) ? a : b;
  return hf(a) < hf(b) ? a : b;
}

static inline uint32_t hmax(uint32_t a, uint32_t b) {
  if (is_nan16(a) && !(a & 0x200)) return a | 0x200;
  if (is_nan16(b) && !(b & 0x200)) return b | 0x200;
  if (is_nan16(a)) return b;
  if (is_nan16(b)) return a;
  if (((a | b) & 0x7FFF) == 0) return (a & 0x8000) ? b : a;
  return hf(a) >= hf(b) ? a : b;
}

static inline uint32_t hmed3(uint32_t a, uint32_t b, uint32_t c) {
  if (is_nan16(a) || is_nan16(b) || is_nan16(c)) return hmin(hmin(a, b), c);
  uint32_t m = hmax(hmax(a, b), c);
  if (hf(m) == hf(a)) return hmax(b, c);
  if (hf(m) == hf(b)) return hmax(a, c);
  return hmax(a, b);
}

/* a selected operand (min/max/med3): unchanged, NaN payload included, unless an output modifier applies */
static inline uint32_t hsel(const insn_t *in, uint32_t h) {
  return (in->flags & ((3u << F_OMOD) | (1u << F_CLAMP))) ? hpost(in, hf(h)) : h;
}


/* fp16 -> 16-bit integer, truncating; NaN gives 0, out-of-range values saturate. */
static inline uint32_t h_to_int(double x, double lo, double hi) {
  if (x != x) return 0;
  return (uint32_t)(int32_t)trunc(SAT(x, lo, hi)) & 0xFFFF;
}

/* fp16 -> normalized 16-bit integer: clamp to [-1, 1] ([0, 1] unsigned), scale, round to nearest even. */
static inline uint32_t h_to_norm(double x, int sign) {
  if (x != x) return 0;
  return (uint32_t)(int32_t)nearbyint(SAT(x, sign ? -1.0 : 0.0, 1.0) * (sign ? 32767.0 : 65535.0)) & 0xFFFF;
}

/* The DIV_FIXUP special cases (quotient q, denominator d, numerator n); *out is set when one applies. */
static int div_fixup_special(double q, double d, double n, double *out) {
  int neg = signbit(d) != signbit(n);
  (void)q;
  if (n != n) *out = n;
  else if (d != d) *out = d;
  else if (d == 0 && n == 0) *out = NAN;
  else if (isinf(d) && isinf(n)) *out = NAN;
  else if (d == 0 || isinf(n)) *out = neg ? -INFINITY : INFINITY;
  else if (isinf(d) || n == 0) *out = neg ? -0.0 : 0.0;
  else return 0;
  return 1;
}

static inline double sin_rev(double x) { return sin(2.0 * M_PI * (x - nearbyint(x))); } /* x in revolutions */
static inline double cos_rev(double x) { return cos(2.0 * M_PI * (x - nearbyint(x))); }

static int valu_16(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  for (int i = 0; i < 3; i++) /* 16-bit inline floats (a 32-bit src2 of v_mad_*32_*16 takes none) */
    if (in->src[i] >= 240 && in->src[i] <= 248) {
      for (int l = 0; l < LANES; l++) o.t[i][l] = INLINE_F16[in->src[i] - 240];
      o.s[i] = o.t[i];
    }
  int op = in->op, clamp = in->flags >> F_CLAMP & 1, preserve = 0;
  const uint32_t *old = vrow(w, in->dst);
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t x = o.s[0][l], y = o.s[1][l], z = o.s[2][l], r;
    uint32_t a = src16(in, 0, x, 1), b = src16(in, 1, y, 1), cc = src16(in, 2, z, 1); /* fp16 views */
    uint32_t ua = src16(in, 0, x, 0), ub = src16(in, 1, y, 0), uc = src16(in, 2, z, 0); /* integer views */
    int32_t ia = (int16_t)ua, ib = (int16_t)ub, ic = (int16_t)uc;
    double fa = hf(a), fb = hf(b), fc = hf(cc), q;
    switch (op) {
      case OP_V_ADD_F16: r = hpost(in, fa + fb); break; /* exact in double: one rounding */
      case OP_V_SUB_F16: r = hpost(in, fa - fb); break;
      case OP_V_SUBREV_F16: r = hpost(in, fb - fa); break;
      case OP_V_MUL_F16: r = hpost(in, fa * fb); break;
      /* the MAD forms are not fused: the product is rounded to fp16 before the add */
      case OP_V_MAC_F16: r = hpost(in, hf(h16(fa * fb)) + hf(z)); break;
      case OP_V_MADMK_F16: case OP_V_MADAK_F16: case OP_V_MAD_LEGACY_F16:
        r = hpost(in, hf(h16(fa * fb)) + fc);
        break;
      case OP_V_MAD_F16: r = hpost(in, hf(h16(fa * fb)) + fc); preserve = 1; break;
      case OP_V_FMA_LEGACY_F16: r = hpost(in, fma(fa, fb, fc)); break; /* exact product and sum in double */
      case OP_V_FMA_F16: r = hpost(in, fma(fa, fb, fc)); preserve = 1; break;
      case OP_V_DIV_FIXUP_F16: case OP_V_DIV_FIXUP_LEGACY_F16:
        r = div_fixup_special(fa, fb, fc, &q) ? hpost(in, q) : hpost(in, (signbit(fb) != signbit(fc)) ? -fabs(fa)
                                                                                                      : fabs(fa));
        preserve = op == OP_V_DIV_FIXUP_F16;
        break;
      case OP_V_MAX_F16: r = hsel(in, hmax(a, b)); break;
      case OP_V_MIN_F16: r = hsel(in, hmin(a, b)); break;
      case OP_V_MIN3_F16: r = hsel(in, hmin(hmin(a, b), cc)); preserve = 1; break;
      case OP_V_MAX3_F16: r = hsel(in, hmax(hmax(a, b), cc)); preserve = 1; break;
      case OP_V_MED3_F16: r = hsel(in, hmed3(a, b, cc)); preserve = 1; break;
      case OP_V_LDEXP_F16: r = hpost(in, ldexp(fa, SAT(ib, -64, 64))); break; /* beyond +-64 the result is 0 or inf anyway */
      case OP_V_CVT_F16_U16: r = hpost(in, (double)ua); break;
      case OP_V_CVT_F16_I16: r = hpost(in, (double)ia); break;
      case OP_V_RCP_F16: r = hpost(in, 1.0 / fa); break;
      case OP_V_SQRT_F16: r = hpost(in, sqrt(fa)); break;
      case OP_V_RSQ_F16: r = hpost(in, 1.0 / sqrt(fa)); break;
      case OP_V_LOG_F16: r = hpost(in, log2(fa)); break;
      case OP_V_EXP_F16: r = hpost(in, exp2(fa)); break;
      case OP_V_FREXP_MANT_F16: { int e; r = isinf(fa) || fa != fa ? a : hpost(in, frexp(fa, &e)); break; }
      case OP_V_FREXP_EXP_I16_F16: { int e = 0; if (!isinf(fa) && fa == fa) frexp(fa, &e); r = (uint32_t)e & 0xFFFF; break; }
      case OP_V_FLOOR_F16: r = hpost(in, floor(fa)); break;
      case OP_V_CEIL_F16: r = hpost(in, ceil(fa)); break;
      case OP_V_TRUNC_F16: r = hpost(in, trunc(fa)); break;
      case OP_V_RNDNE_F16: r = hpost(in, nearbyint(fa)); break;
      case OP_V_FRACT_F16: { double fr = fa - floor(fa); r = hpost(in, fr > 0x1.ffcp-1 ? 0x1.ffcp-1 : fr); break; }
      case OP_V_SIN_F16: r = hpost(in, isinf(fa) ? NAN : fa == 0 ? fa : sin_rev(fa)); break; /* sin(-0) = -0 */
      case OP_V_COS_F16: r = hpost(in, isinf(fa) ? NAN : cos_rev(fa)); break;
      case OP_V_CVT_U16_F16: r = h_to_int(fa, 0.0, 65535.0); break;
      case OP_V_CVT_I16_F16: r = h_to_int(fa, -32768.0, 32767.0); break;
      case OP_V_CVT_NORM_I16_F16: r = h_to_norm(fa, 1); break;
      case OP_V_CVT_NORM_U16_F16: r = h_to_norm(fa, 0); break;
      case OP_V_SAT_PK_U8_I16: r = (uint32_t)SAT((int16_t)x, 0, 255) | (uint32_t)SAT((int16_t)(x >> 16), 0, 255) << 8; break;
      case OP_V_ADD_U16: r = ua + ub; if (clamp && r > 0xFFFF) r = 0xFFFF; break;
      case OP_V_SUB_U16: r = ua < ub ? (clamp ? 0 : ua - ub) : ua - ub; break;
      case OP_V_SUBREV_U16: r = ub < ua ? (clamp ? 0 : ub - ua) : ub - ua; break;
      case OP_V_MUL_LO_U16: r = ua * ub; break;
      case OP_V_LSHLREV_B16: r = ub << (ua & 15); break;
      case OP_V_LSHRREV_B16: r = ub >> (ua & 15); break;
      case OP_V_ASHRREV_I16: r = (uint32_t)(ib >> (ua & 15)); break;
      case OP_V_MAX_U16: r = ua > ub ? ua : ub; break;
      case OP_V_MIN_U16: r = ua < ub ? ua : ub; break;
      case OP_V_MAX_I16: r = (uint32_t)(ia > ib ? ia : ib); break;
      case OP_V_MIN_I16: r = (uint32_t)(ia < ib ? ia : ib); break;
      case OP_V_MAD_U16: case OP_V_MAD_LEGACY_U16: {
        uint32_t p = ua * ub + uc;
        r = clamp && p > 0xFFFF ? 0xFFFF : p;
        preserve = op == OP_V_MAD_U16;
        break;
      }
      case OP_V_MAD_I16: case OP_V_MAD_LEGACY_I16: {
        int32_t p = ia * ib + ic;
        r = (uint32_t)(clamp ? SAT(p, -32768, 32767) : p);
        preserve = op == OP_V_MAD_I16;
        break;
      }
      case OP_V_ADD_I16: r = (uint32_t)(clamp ? SAT(ia + ib, -32768, 32767) : ia + ib); preserve = 1; break;
      case OP_V_SUB_I16: r = (uint32_t)(clamp ? SAT(ia - ib, -32768, 32767) : ia - ib); preserve = 1; break;
      case OP_V_MIN3_I16: { int32_t m = ia < ib ? ia : ib; r = (uint32_t)(m < ic ? m : ic); preserve = 1; break; }
      case OP_V_MAX3_I16: { int32_t m = ia > ib ? ia : ib; r = (uint32_t)(m > ic ? m : ic); preserve = 1; break; }
      case OP_V_MED3_I16: r = (uint32_t)MED3(ia, ib, ic); preserve = 1; break;
      case OP_V_MIN3_U16: { uint32_t m = ua < ub ? ua : ub; r = m < uc ? m : uc; preserve = 1; break; }
      case OP_V_MAX3_U16: { uint32_t m = ua > ub ? ua : ub; r = m > uc ? m : uc; preserve = 1; break; }
      case OP_V_MED3_U16: r = MED3(ua, ub, uc); preserve = 1; break;
      /* 32-bit results */
      case OP_V_CVT_F32_F16: res[l] = u32f(fpost(in, (float)fa)); continue;
      case OP_V_MAD_U32_U16: res[l] = ua * ub + z; continue;
      case OP_V_MAD_I32_I16: res[l] = (uint32_t)(ia * ib) + z; continue;
      case OP_V_CVT_PKNORM_I16_F16: res[l] = h_to_norm(fa, 1) | h_to_norm(fb, 1) << 16; continue;
      case OP_V_CVT_PKNORM_U16_F16: res[l] = h_to_norm(fa, 0) | h_to_norm(fb, 0) << 16; continue;
      default: return valu_unhandled(c);
    }
    r &= 0xFFFF;
    /* VOP1/VOP2 forms and the _legacy ops zero the high half; the others write the half OP_SEL[3] picks */
    if (preserve) r = (in->flags >> (F_OPSEL + 3) & 1) ? (old[l] & 0xFFFF) | r << 16 : (old[l] & 0xFFFF0000u) | r;
    res[l] = r;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

/* ---- 64-bit floating point and the division steps (docs/facts.md §6.5); .wide says which operands are pairs */

static inline uint64_t bits64(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

static inline double dmod_src(const insn_t *in, int i, double x) {
  if (in->flags >> (F_ABS + i) & 1) x = fabs(x);
  if (in->flags >> (F_NEG + i) & 1) x = -x;
  return x;
}

static inline double dpost(const insn_t *in, double x) {
  int omod = (in->flags >> F_OMOD) & 3;
  if (omod) x *= omod == 1 ? 2.0 : omod == 2 ? 4.0 : 0.5;
  if (in->flags >> F_CLAMP & 1) x = x != x ? 0.0 : fmin(fmax(x, 0.0), 1.0);
  return x;
}

/* V_MIN/V_MAX_F64 with IEEE mode, as the fp32 forms (ieee_min/ieee_max) */
static inline int is_snan64(double d) {
  uint64_t u = bits64(d);
  return (u & 0x7FF0000000000000ull) == 0x7FF0000000000000ull && (u & 0xFFFFFFFFFFFFFull) && !(u >> 51 & 1);
}
static inline double quiet64(double d) { return f64(bits64(d) | (1ull << 51)); }

static inline double dmin(double a, double b) {
  if (is_snan64(a)) return quiet64(a);
  if (is_snan64(b)) return quiet64(b);
  if (a != a) return b;
  if (b != b) return a;
  if (a == 0.0 && b == 0.0) return signbit(a) ? a : b;
  return a < b ? a : b;
}

static inline double dmax(double a, double b) {
  if (is_snan64(a)) return quiet64(a);
  if (is_snan64(b)) return quiet64(b);
  if (a != a) return b;
  if (b != b) return a;
  if (a == 0.0 && b == 0.0) return signbit(a) ? b : a;
  return a >= b ? a : b;
}


static inline int biased_exp(double x, int wide) { return wide ? (int)(bits64(x) >> 52 & 0x7FF) : (int)(u32f((float)x) >> 23 & 0xFF); }
static inline int is_denorm(double x, int wide) { return x != 0 && biased_exp(x, wide) == 0; }

/* V_DIV_SCALE: scales s0 (the numerator or the denominator, whichever s0 is) so that the reciprocal iteration
 * neither overflows nor underflows; *vcc says the quotient will need V_DIV_FMAS's rescaling. In the operand
 * precision (wide: fp64). */
static double div_scale(double s0, double den, double num, int wide, int *vcc) {
  int lim = wide ? 768 : 96, sc = wide ? 128 : 64, mant = wide ? 53 : 23;
  double rcp = wide ? 1.0 / den : (double)(1.0f / (float)den), quo = wide ? num / den : (double)((float)num / (float)den);
  *vcc = 0;
  if (num == 0 || den == 0) return NAN;
  if (biased_exp(num, wide) - biased_exp(den, wide) >= lim) { /* quotient near the largest value */
    *vcc = 1;
    return s0 == den ? ldexp(s0, sc) : s0;
  }
  if (is_denorm(den, wide)) return ldexp(s0, sc);
  if (is_denorm(rcp, wide) && is_denorm(quo, wide)) {
    *vcc = 1;
    return s0 == den ? ldexp(s0, -sc) : s0;
  }
  if (is_denorm(rcp, wide)) return ldexp(s0, -sc);
  if (is_denorm(quo, wide)) {
    *vcc = 1;
    return s0 == num ? ldexp(s0, sc) : s0;
  }
  if (biased_exp(num, wide) <= mant) return ldexp(s0, sc); /* tiny numerator */
  return s0;
}

/* a * b + c rounded to fp64, and the sign of what that rounding left out (0: exact). For fp32 operands a TwoSum of
 * the exact product (it fits in 48 bits), else Boldo and Muller's ErrFma (exact unless its terms fall below
 * fp64's normal range). */
static double fma_and_error(double a, double b, double c, int wide, double *err) {
  double r = fma(a, b, c);
  if (!wide) {
    double p = a * b, bb = r - p;
    *err = (p - (r - bb)) + (c - bb);
  } else {
    double u1 = a * b, u2 = fma(a, b, -u1), s1 = c + u2, v = s1 - c, z = (c - (s1 - v)) + (u2 - v);
    double b1 = u1 + s1, w = b1 - u1, b2 = (u1 - (b1 - w)) + (s1 - w);
    *err = ((b1 - r) + b2) + z;
  }
  return r;
}

/* r * 2^e rounded once to the result's precision (wide: fp64, else fp32, denormals included), where the exact value
 * is r plus something of err's sign below r's last bit: rounding r again would go wrong only where r lies exactly
 * midway between two results, and there the exact value is on err's side. */
static double scale_rounded_once(double r, double err, int e, int wide) {
  double t = wide ? ldexp(r, e) : (double)(float)ldexp(r, e);
  if (err == 0 || !isfinite(t)) return t;
  double back = ldexp(t, -e);
  if (back == r) return t;
  double away = wide ? nextafter(t, r > back ? INFINITY : -INFINITY)
                     : (double)nextafterf((float)t, r > back ? INFINITY : -INFINITY);
  if (r - back != ldexp(away, -e) - r) return t;  /* not midway: t is the nearest to the exact value too */
  return (err > 0) == (away > t) ? away : t;
}

/* V_DIV_FMAS: fma, undoing DIV_SCALE's scaling where VCC says so: up for a large result, down for a small one. The
 * scaled result is rounded once, as the fused hardware rounds it: scaling a rounded fma down into the denormal
 * range would round twice and come out one ulp off now and then. */
static inline double div_fmas(double a, double b, double c, int vcc, int wide) {
  if (!vcc) return wide ? fma(a, b, c) : (double)fmaf((float)a, (float)b, (float)c);
  double err, r = fma_and_error(a, b, c, wide, &err);
  int sc = wide ? 128 : 64;
  return scale_rounded_once(r, err, fabs(c) >= 2.0 ? sc : -sc, wide);
}

/* V_DIV_FIXUP: the special cases of num / den, else the quotient q with the sign of the division */
static inline double div_fixup(double q, double den, double num) {
  double r;
  if (div_fixup_special(q, den, num, &r)) return r;
  return signbit(den) != signbit(num) ? -fabs(q) : fabs(q);
}

/* V_TRIG_PREOP_F64 (docs/facts.md §6.11): the 53 bits of 2/pi that start `shift` bits into its fraction (bits past
 * the 1201 the ISA defines are 0), with their place value; a large x moves the window along by its exponent, and
 * from exponent 1968 the result is scaled up by 2^128 to stay normal. */
static double trig_preop(double x, uint32_t segment) {
  int e = (int)(bits64(x) >> 52 & 0x7FF), shift = (int)(segment & 31) * 53;
  if (e > 1077) shift += e - 1077;
  uint64_t m = 0;
  for (int i = shift; i < shift + 53; i++) /* bit i of the fraction, 0 its most significant */
    m = m << 1 | (i < TWO_OVER_PI_BITS ? (TWO_OVER_PI[i >> 5] >> (31 - (i & 31))) & 1 : 0);
  int scale = -53 - shift + (e >= 1968 ? 128 : 0);
  if (scale < -1074) { /* the ISA rounds toward zero: drop the bits below the smallest denormal's place */
    m = -1074 - scale >= 64 ? 0 : m >> (-1074 - scale);
    scale = -1074;
  }
  return ldexp((double)m, scale); /* exact now */
}

static int valu_f64(ctx_t *c, wave_t *w, const insn_t *in) {
  const op_entry *e = &OPS[in->op];
  uint64_t exec;
  int src_of[LANES], op = in->op, nsrc = in->src[2] >= 0 ? 3 : in->src[1] >= 0 ? 2 : 1;
  uint32_t tl[3][LANES], th[3][LANES], rl[LANES], rh[LANES];
  const uint32_t *lo[3] = {ZERO_ROW, ZERO_ROW, ZERO_ROW}, *hi[3] = {ZERO_ROW, ZERO_ROW, ZERO_ROW};
  if (valu_lanes(c, w, in, &exec, src_of)) return 1;
  for (int i = 0; i < nsrc; i++) {
    int code = in->src[i];
    if (!(e->wide >> i & 1)) {
      if (vsrc(c, w, in, code, tl[i], &lo[i])) return 1;
    } else if (code == 255) { /* a 64-bit float literal holds the high half */
      for (int l = 0; l < LANES; l++) tl[i][l] = 0, th[i][l] = in->literal;
      lo[i] = tl[i], hi[i] = th[i];
    } else if (vsrc64(c, w, in, code, tl[i], th[i], &lo[i], &hi[i])) return 1;
  }
  if (in->flags & (1u << F_DPP)) { /* both halves of src0 come from the same lane */
    memcpy(rl, lo[0], sizeof rl), memcpy(rh, hi[0], sizeof rh);
    dpp_permute(src_of, rl), dpp_permute(src_of, rh);
    memcpy(tl[0], rl, sizeof rl), memcpy(th[0], rh, sizeof rh);
    lo[0] = tl[0], hi[0] = th[0];
  }
  int wd = e->wide >> 3 & 1;
  if (vdst_check(c, w, in->dst, wd ? 2 : 1)) return 1;
  uint64_t vcc = vcc_of(w), vcc_out = 0;
  for (int l = 0; l < LANES; l++) {
    double a = dmod_src(in, 0, f64((uint64_t)lo[0][l] | (uint64_t)hi[0][l] << 32));
    double b = dmod_src(in, 1, f64((uint64_t)lo[1][l] | (uint64_t)hi[1][l] << 32));
    double z = dmod_src(in, 2, f64((uint64_t)lo[2][l] | (uint64_t)hi[2][l] << 32));
    float fa = fmod_src(in, 0, f32(lo[0][l])), fb = fmod_src(in, 1, f32(lo[1][l])), fz = fmod_src(in, 2, f32(lo[2][l]));
    double d = 0;     /* the fp64 result, when the destination is a pair */
    uint32_t r = 0;   /* else the 32-bit one */
    int e2, v;
    switch (op) {
      case OP_V_CVT_I32_F64: r = d_to_i32(a); break;
      case OP_V_CVT_U32_F64: r = d_to_u32(a); break;
      case OP_V_CVT_F32_F64: r = u32f(fpost(in, (float)a)); break;
      case OP_V_FREXP_EXP_I32_F64: e2 = 0; if (!isinf(a) && a == a) frexp(a, &e2); r = (uint32_t)e2; break;
      case OP_V_CVT_F64_I32: d = dpost(in, (double)(int32_t)lo[0][l]); break;
      case OP_V_CVT_F64_U32: d = dpost(in, (double)lo[0][l]); break;
      case OP_V_CVT_F64_F32: d = dpost(in, (double)fa); break;
      case OP_V_TRUNC_F64: d = dpost(in, trunc(a)); break;
      case OP_V_CEIL_F64: d = dpost(in, ceil(a)); break;
      case OP_V_RNDNE_F64: d = dpost(in, nearbyint(a)); break;
      case OP_V_FLOOR_F64: d = dpost(in, floor(a)); break;
      case OP_V_RCP_F64: d = dpost(in, 1.0 / a); break;
      case OP_V_RSQ_F64: d = dpost(in, 1.0 / sqrt(a)); break;
      case OP_V_SQRT_F64: d = dpost(in, sqrt(a)); break;
      case OP_V_FREXP_MANT_F64: d = isinf(a) || a != a ? a : dpost(in, frexp(a, &e2)); break;
      case OP_V_FRACT_F64: { double fr = a - floor(a); d = dpost(in, fr > 0x1.fffffffffffffp-1 ? 0x1.fffffffffffffp-1 : fr); break; }
      case OP_V_LDEXP_F64: d = dpost(in, ldexp(a, SAT((int32_t)lo[1][l], -4096, 4096))); break;
      case OP_V_TRIG_PREOP_F64: d = dpost(in, trig_preop(a, lo[1][l])); break;
      case OP_V_ADD_F64: d = dpost(in, a + b); break;
      case OP_V_MUL_F64: d = dpost(in, a * b); break;
      case OP_V_MIN_F64: d = dpost(in, dmin(a, b)); break;
      case OP_V_MAX_F64: d = dpost(in, dmax(a, b)); break;
      case OP_V_FMA_F64: case OP_V_FMAC_F64: d = dpost(in, fma(a, b, z)); break;
      case OP_V_DIV_FMAS_F64: d = dpost(in, div_fmas(a, b, z, vcc >> l & 1, 1)); break;
      case OP_V_DIV_FIXUP_F64: d = dpost(in, div_fixup(a, b, z)); break;
      case OP_V_DIV_SCALE_F64: d = div_scale(a, b, z, 1, &v); vcc_out |= (uint64_t)v << l; break;
      case OP_V_DIV_SCALE_F32: r = u32f((float)div_scale(fa, fb, fz, 0, &v)); vcc_out |= (uint64_t)v << l; break;
      case OP_V_DIV_FMAS_F32: r = u32f(fpost(in, (float)div_fmas(fa, fb, fz, vcc >> l & 1, 0))); break;
      case OP_V_DIV_FIXUP_F32: r = u32f(fpost(in, (float)div_fixup(fa, fb, fz))); break;
      default: return valu_unhandled(c);
    }
    if (wd) r = (uint32_t)bits64(d), rh[l] = (uint32_t)(bits64(d) >> 32);
    rl[l] = r;
  }
  vwrite(w, in, in->dst, rl, exec);
  if (wd) vwrite(w, in, in->dst + 1, rh, exec);
  if (op == OP_V_DIV_SCALE_F32 || op == OP_V_DIV_SCALE_F64) return swrite64(c, w, in->sdst, vcc_out & exec);
  return 0;
}

#undef FA
#undef FB
#undef FC
#undef FR

/* ---- VOPC compares: condition and operand type come from the opcode table (isa.OPS) */

/* 16-bit operands (docs/facts.md §13.1): the low half of the 32-bit value, except that the inline float
 * constants are fp16 patterns. */
static inline uint16_t op16(const insn_t *in, int i, uint32_t v) {
  int code = in->src[i];
  return code >= 240 && code <= 248 ? INLINE_F16[code - 240] : (uint16_t)v;
}

static inline double fmod_src64(const insn_t *in, int i, double x) {
  if (in->flags >> (F_ABS + i) & 1) x = fabs(x);
  if (in->flags >> (F_NEG + i) & 1) x = -x;
  return x;
}

/* A 64-bit compare source as lo/hi rows; a literal is the high half of an fp64 operand (low half 0) and the
 * zero-extended value of an integer one (docs/facts.md §13.1). */
static int cmp_src64(ctx_t *c, wave_t *w, const insn_t *in, int i, int is_float, uint32_t *tl, uint32_t *th,
                     const uint32_t **lo, const uint32_t **hi) {
  if (vsrc64(c, w, in, in->src[i], tl, th, lo, hi)) return 1;
  if (is_float && in->src[i] == 255)
    for (int l = 0; l < LANES; l++) tl[l] = 0, th[l] = in->literal;
  return 0;
}

static int valu_compare(ctx_t *c, wave_t *w, const insn_t *in) {
  const op_entry *e = &OPS[in->op];
  uint64_t exec, m = 0;
  int src_of[LANES], cond = e->cond, ty = e->type;
  if (valu_lanes(c, w, in, &exec, src_of)) return 1;
  if (ty == CT_I64 || ty == CT_U64 || ty == CT_F64 || ty == CT_CLASS_F64) {
    uint32_t tl[2][LANES], th[2][LANES], t1[LANES];
    const uint32_t *lo[2], *hi[2], *mask = NULL;
    if (cmp_src64(c, w, in, 0, ty != CT_I64 && ty != CT_U64, tl[0], th[0], &lo[0], &hi[0])) return 1;
    if (ty == CT_CLASS_F64 ? vsrc(c, w, in, in->src[1], t1, &mask)
                           : cmp_src64(c, w, in, 1, ty == CT_F64, tl[1], th[1], &lo[1], &hi[1]))
      return 1;
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1)) continue;
      uint64_t a = (uint64_t)lo[0][l] | ((uint64_t)hi[0][l] << 32), b = 0;
      if (ty != CT_CLASS_F64) b = (uint64_t)lo[1][l] | ((uint64_t)hi[1][l] << 32);
      int r;
      if (ty == CT_I64) r = CMP_INT(cond, (int64_t)a, (int64_t)b);
      else if (ty == CT_U64) r = CMP_INT(cond, a, b);
      else if (ty == CT_F64) r = cmp_float(cond, fmod_src64(in, 0, f64(a)), fmod_src64(in, 1, f64(b)));
      else r = class_f64(fmod_src64(in, 0, f64(a)), mask[l]);
      m |= (uint64_t)r << l;
    }
  } else {
    uint32_t t[3][LANES];
    const uint32_t *s[3];
    if (vsrcs(c, w, in, 2, t, s)) return 1;
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1)) continue;
      uint32_t x = s[0][l], y = s[1][l];
      int r;
      switch (ty) {
        case CT_F32: r = cmp_float(cond, fmod_src(in, 0, f32(x)), fmod_src(in, 1, f32(y))); break;
        case CT_F16:
          r = cmp_float(cond, fmod_src(in, 0, (float)f16_of(op16(in, 0, x))), fmod_src(in, 1, (float)f16_of(op16(in, 1, y))));
          break;
        case CT_I16: r = CMP_INT(cond, (int16_t)op16(in, 0, x), (int16_t)op16(in, 1, y)); break;
        case CT_U16: r = CMP_INT(cond, op16(in, 0, x), op16(in, 1, y)); break;
        case CT_I32: r = CMP_INT(cond, (int32_t)x, (int32_t)y); break;
        case CT_U32: r = CMP_INT(cond, x, y); break;
        case CT_CLASS_F32: r = class_f32(fmod_src(in, 0, f32(x)), y); break;
        default: { /* CT_CLASS_F16: the modifiers act on the sign bit, which is all they can change */
          uint16_t h = op16(in, 0, x);
          int ab = in->flags & (1u << F_SDWA) ? (in->flags2 >> SDWA_SRC0_ABS) & 1 : (in->flags >> F_ABS) & 1;
          int ng = in->flags & (1u << F_SDWA) ? (in->flags2 >> SDWA_SRC0_NEG) & 1 : (in->flags >> F_NEG) & 1;
          if (ab) h &= 0x7FFF;
          if (ng) h ^= 0x8000;
          r = class_f16(h, y);
        }
      }
      m |= (uint64_t)r << l;
    }
  }
  if (e->cmpx) { /* v_cmpx writes EXEC as well as its destination */
    if (c->L->strict && hz_scalar(c, w, 126, 2, 1)) return 1;
    w->s[126] = (uint32_t)m;
    w->s[127] = (uint32_t)(m >> 32);
  }
  return swrite64(c, w, in->dst < 0 ? 106 : in->dst, m);
}

/* ---- moves, lane access, selects */

static int valu_nop(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES];
  return valu_lanes(c, w, in, &exec, src_of);
}

/* v_mov_b32 and the AGPR moves (whose operands the decoder already placed in the AGPR file) */
static int valu_move(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES];
  uint32_t t[3][LANES];
  const uint32_t *s[3];
  if (valu_lanes(c, w, in, &exec, src_of) || vsrcs(c, w, in, 1, t, s) || vdst_check(c, w, in->dst, 1)) return 1;
  vwrite(w, in, in->dst, s[0], exec);
  return 0;
}

static int valu_move64(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES];
  uint32_t tl[LANES], th[LANES];
  const uint32_t *lo, *hi;
  if (valu_lanes(c, w, in, &exec, src_of) || vsrc64(c, w, in, in->src[0], tl, th, &lo, &hi) ||
      vdst_check(c, w, in->dst, 2))
    return 1;
  uint32_t rl[LANES], rh[LANES]; /* copied first: the destination pair may be the source pair */
  memcpy(rl, lo, sizeof rl);
  memcpy(rh, hi, sizeof rh);
  if (in->flags & (1u << F_DPP)) { /* both halves of a lane come from the same source lane */
    dpp_permute(src_of, rl);
    dpp_permute(src_of, rh);
  }
  vwrite(w, in, in->dst, rl, exec);
  vwrite(w, in, in->dst + 1, rh, exec);
  return 0;
}

/* v_readfirstlane_b32, v_readlane_b32 (to an SGPR), v_writelane_b32 (from one, ignoring EXEC) */
/* v_readlane/v_writelane's lane select (src1), which has its own wait-state rule (hazards.c) */
static int lane_select(ctx_t *c, wave_t *w, const insn_t *in, uint32_t *sel) {
  c->role = ROLE_LANESEL;
  int rc = sval(c, w, in, in->src[1], sel);
  c->role = ROLE_PLAIN;
  return rc;
}

/* A lane mask or carry-in read from SGPRs (v_cndmask, v_addc...): exempt from the SGPR-as-constant rule. */
static int lane_mask(ctx_t *c, wave_t *w, const insn_t *in, uint64_t *m) {
  c->role = ROLE_MASK;
  int rc = sval64(c, w, in, in->src[2], m);
  c->role = ROLE_PLAIN;
  return rc;
}

static int valu_cross_lane(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES];
  uint32_t t[LANES], val, sel;
  const uint32_t *s;
  if (valu_lanes(c, w, in, &exec, src_of)) return 1;
  switch (in->op) {
    case OP_V_READFIRSTLANE_B32: {
      if (vsrc(c, w, in, in->src[0], t, &s)) return 1;
      int lane = exec ? __builtin_ctzll(exec) : 0;
      return swrite(c, w, in->dst, s[lane]);
    }
    case OP_V_READLANE_B32:
      if (vsrc(c, w, in, in->src[0], t, &s) || lane_select(c, w, in, &sel)) return 1;
      return swrite(c, w, in->dst, s[sel & 63]);
    case OP_V_WRITELANE_B32:
      if (sval(c, w, in, in->src[0], &val) || lane_select(c, w, in, &sel) || vdst_check(c, w, in->dst, 1))
        return 1;
      vrow(w, in->dst)[sel & 63] = val;
      return 0;
    default: return valu_unhandled(c);
  }
}

static int valu_cndmask(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec, m;
  int src_of[LANES];
  uint32_t t[3][LANES], res[LANES];
  const uint32_t *s[3];
  if (valu_lanes(c, w, in, &exec, src_of) || vsrcs(c, w, in, 2, t, s) || lane_mask(c, w, in, &m) ||
      vdst_check(c, w, in->dst, 1))
    return 1;
  int mods = (in->flags & ((1u << F_VOP3) | (1u << F_DPP))) && (in->flags & ((7u << F_ABS) | (7u << F_NEG)));
  for (int l = 0; l < LANES; l++) {
    uint32_t a = s[0][l], b = s[1][l];
    if (mods) { /* abs/neg act on the sign bit of the selected value */
      a = u32f(fmod_src(in, 0, f32(a)));
      b = u32f(fmod_src(in, 1, f32(b)));
    }
    res[l] = (m >> l & 1) ? b : a;
  }
  vwrite(w, in, in->dst, res, exec);
  return 0;
}

static int valu_mbcnt(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES], lo = in->op == OP_V_MBCNT_LO_U32_B32;
  uint32_t t[3][LANES], res[LANES];
  const uint32_t *s[3];
  if (valu_lanes(c, w, in, &exec, src_of) || vsrcs(c, w, in, 2, t, s) || vdst_check(c, w, in->dst, 1)) return 1;
  for (int l = 0; l < LANES; l++) {
    uint32_t m = s[0][l], below;
    if (lo) below = l >= 32 ? m : (m & ((1u << l) - 1));
    else below = l < 32 ? 0 : (l == 63 ? m & 0x7FFFFFFFu : m & ((1u << (l - 32)) - 1));
    if (lo && l == 0) below = 0;
    res[l] = (uint32_t)__builtin_popcount(below) + s[1][l];
  }
  vwrite(w, in, in->dst, res, exec);
  return 0;
}

/* ---- integer ops with a carry (VCC or an SGPR pair) in or out */

static int valu_carry(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec, cin = 0, cout = 0;
  int src_of[LANES], op = in->op;
  uint32_t t[3][LANES], res[LANES];
  const uint32_t *s[3];
  if (valu_lanes(c, w, in, &exec, src_of) || vsrcs(c, w, in, 2, t, s) || vdst_check(c, w, in->dst, 1)) return 1;
  if (in->src[2] >= 0 && lane_mask(c, w, in, &cin)) return 1;
  int clamp = in->flags >> F_CLAMP & 1;
  for (int l = 0; l < LANES; l++) {
    uint64_t a = s[0][l], b = s[1][l], ci = cin >> l & 1, r;
    int co;
    switch (op) {
      case OP_V_ADD_CO_U32: r = a + b; co = r >> 32; break;
      case OP_V_SUB_CO_U32: r = a - b; co = a < b; break;
      case OP_V_SUBREV_CO_U32: r = b - a; co = b < a; break;
      case OP_V_ADDC_CO_U32: r = a + b + ci; co = r >> 32; break;
      case OP_V_SUBB_CO_U32: r = a - b - ci; co = a < b + ci; break;
      case OP_V_SUBBREV_CO_U32: r = b - a - ci; co = b < a + ci; break;
      default: return valu_unhandled(c);
    }
    res[l] = (uint32_t)r;
    if (clamp && co) res[l] = (op == OP_V_ADD_CO_U32 || op == OP_V_ADDC_CO_U32) ? 0xFFFFFFFFu : 0;
    if (exec >> l & 1) cout |= (uint64_t)co << l;
  }
  vwrite(w, in, in->dst, res, exec);
  return swrite64(c, w, in->sdst, cout);
}

static int valu_mad64(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec, carry = 0;
  int src_of[LANES], sign = in->op == OP_V_MAD_I64_I32;
  uint32_t t[3][LANES], tl[LANES], th[LANES], lo_o[LANES], hi_o[LANES];
  const uint32_t *s[3], *lo, *hi;
  if (valu_lanes(c, w, in, &exec, src_of) || vsrcs(c, w, in, 2, t, s) ||
      vsrc64(c, w, in, in->src[2], tl, th, &lo, &hi) || vdst_check(c, w, in->dst, 2))
    return 1;
  for (int l = 0; l < LANES; l++) {
    uint64_t x = (uint64_t)lo[l] | ((uint64_t)hi[l] << 32), r;
    if (sign) {
      __int128 p = (__int128)(int32_t)s[0][l] * (int32_t)s[1][l] + (__int128)(int64_t)x;
      r = (uint64_t)p;
      if ((exec >> l & 1) && (p > INT64_MAX || p < INT64_MIN)) carry |= 1ull << l;
    } else {
      unsigned __int128 p = (unsigned __int128)s[0][l] * s[1][l] + x;
      r = (uint64_t)p;
      if ((exec >> l & 1) && (p >> 64)) carry |= 1ull << l;
    }
    lo_o[l] = (uint32_t)r;
    hi_o[l] = (uint32_t)(r >> 32);
  }
  vwrite(w, in, in->dst, lo_o, exec);
  vwrite(w, in, in->dst + 1, hi_o, exec);
  return swrite64(c, w, in->sdst, carry);
}

static int valu_shift64(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES], op = in->op;
  uint32_t t[3][LANES], tl[LANES], th[LANES], tl2[LANES], th2[LANES], lo_o[LANES], hi_o[LANES];
  const uint32_t *s[3], *lo, *hi, *lo2 = NULL, *hi2 = NULL;
  if (valu_lanes(c, w, in, &exec, src_of)) return 1;
  if (op == OP_V_LSHL_ADD_U64) {
    if (vsrc64(c, w, in, in->src[0], tl, th, &lo, &hi) || vsrc(c, w, in, in->src[1], t[1], &s[1]) ||
        vsrc64(c, w, in, in->src[2], tl2, th2, &lo2, &hi2))
      return 1;
  } else if (vsrc(c, w, in, in->src[0], t[0], &s[0]) || vsrc64(c, w, in, in->src[1], tl, th, &lo, &hi)) {
    return 1;
  }
  if (vdst_check(c, w, in->dst, 2)) return 1;
  for (int l = 0; l < LANES; l++) {
    uint64_t r, x = (uint64_t)lo[l] | ((uint64_t)hi[l] << 32);
    switch (op) {
      case OP_V_LSHLREV_B64: r = x << (s[0][l] & 63); break;
      case OP_V_LSHRREV_B64: r = x >> (s[0][l] & 63); break;
      case OP_V_ASHRREV_I64: r = (uint64_t)((int64_t)x >> (s[0][l] & 63)); break;
      case OP_V_LSHL_ADD_U64: { /* shift = S1[2:0]; the ISA treats unsupported counts 5..7 as 0 */
        uint32_t sh = s[1][l] & 7;
        r = (x << (sh > 4 ? 0 : sh)) + ((uint64_t)lo2[l] | ((uint64_t)hi2[l] << 32));
        break;
      }
      default: return valu_unhandled(c);
    }
    lo_o[l] = (uint32_t)r;
    hi_o[l] = (uint32_t)(r >> 32);
  }
  vwrite(w, in, in->dst, lo_o, exec);
  vwrite(w, in, in->dst + 1, hi_o, exec);
  return 0;
}

/* ---- packed fp32 (VOP3P) on register pairs */

/* v_permlane16_swap_b32 / v_permlane32_swap_b32 (gfx950, docs/facts.md §6.7): rows of 16 lanes; the odd rows
 * of VDST trade places with the even rows of SRC0 (permlane16), or rows 2-3 of VDST with rows 0-1 of SRC0
 * (permlane32). Both registers are written. What an inactive lane gives or receives (the FI and BOUND_CTRL
 * modifiers decide) is not known to us: a partial EXEC is refused. */
static int valu_permlane_swap(ctx_t *c, wave_t *w, const insn_t *in) {
  if (in->src[0] < 256 || in->src[0] >= 256 + NV)
    return fail(c, E_INVALID, 0, "the permlane swaps take a VGPR source");
  if (exec_of(w) != ~0ull)
    return fail(c, E_UNIMPL, 0, "a permlane swap with inactive lanes (EXEC %#llx): the rule for them is not "
                "emulated", (unsigned long long)exec_of(w));
  int src = in->src[0] - 256;
  if (check_v(c, w, src, 1, 0) || check_v(c, w, in->dst - 256, 1, 0) || vdst_check(c, w, in->dst, 1) ||
      check_v(c, w, src, 1, 1))
    return 1;
  int span = in->op == OP_V_PERMLANE16_SWAP_B32 ? 16 : 32;
  uint32_t *d = vrow(w, in->dst), *s = vrow(w, in->src[0]);
  for (int l = 0; l < LANES; l++)
    if ((l / span) % 2) {
      uint32_t t = d[l];
      d[l] = s[l - span];
      s[l - span] = t;
    }
  return 0;
}

/* The integer dot products (VOP3P, docs/facts.md §6.8): D = S2 + the sum of the products of S0's and S1's
 * packed 16-, 8- or 4-bit elements, signed or unsigned, exactly; clamp saturates to the 32-bit result's range,
 * else it wraps. Only the default op_sel / op_sel_hi and no neg modifiers are emulated. */
static int valu_dot_int(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op, accumulate = op == OP_V_DOT2C_I32_I16 || op == OP_V_DOT4C_I32_I8 || op == OP_V_DOT8C_I32_I4;
  if (accumulate ? (in->flags >> F_OPSEL & 15) || (in->flags >> F_NEG & 7) || (in->flags >> F_ABS & 7)
                 : (in->flags >> F_OPSEL & 7) || ((in->flags >> F_OPSEL_HI) & 7) != 7 || (in->flags >> F_NEG & 7) ||
                   (in->flags >> F_NEG_HI & 7))
    return fail(c, E_UNIMPL, 0, "a dot product with op_sel, op_sel_hi, neg or abs modifiers is not emulated");
  int bits, sgn;
  switch (op) { /* the VOP2 dot*c forms accumulate into D (the decoder makes it S2) */
    case OP_V_DOT2C_I32_I16: bits = 16; sgn = 1; break;
    case OP_V_DOT4C_I32_I8: bits = 8; sgn = 1; break;
    case OP_V_DOT8C_I32_I4: bits = 4; sgn = 1; break;
    case OP_V_DOT2_I32_I16: bits = 16; sgn = 1; break;
    case OP_V_DOT2_U32_U16: bits = 16; sgn = 0; break;
    case OP_V_DOT4_I32_I8: bits = 8; sgn = 1; break;
    case OP_V_DOT4_U32_U8: bits = 8; sgn = 0; break;
    case OP_V_DOT8_I32_I4: bits = 4; sgn = 1; break;
    default: bits = 4; sgn = 0; break; /* v_dot8_u32_u4 */
  }
  int clamp = in->flags >> F_CLAMP & 1;
  uint32_t res[LANES], mask = (1u << bits) - 1;
  for (int l = 0; l < LANES; l++) {
    int64_t acc = sgn ? (int64_t)(int32_t)o.s[2][l] : (int64_t)o.s[2][l];
    for (int e = 0; e < 32 / bits; e++) {
      int64_t a = (o.s[0][l] >> (bits * e)) & mask, b = (o.s[1][l] >> (bits * e)) & mask;
      if (sgn) {
        a -= (a >> (bits - 1)) << bits; /* sign-extend the element */
        b -= (b >> (bits - 1)) << bits;
      }
      acc += a * b;
    }
    if (clamp) acc = sgn ? SAT(acc, INT32_MIN, INT32_MAX) : SAT(acc, 0, (int64_t)UINT32_MAX);
    res[l] = (uint32_t)acc;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

/* The floating-point dot products (docs/facts.md §6.11), as the ISA's pseudocode reads: each product of two fp16 or
 * bf16 elements in fp32 (exact, bar bf16 underflow), then fp32 additions rounded one at a time, in the pseudocode's
 * order: v_dot2_f32_bf16 (p0 + p1) + S2, v_dot2_f32_f16 (S2 + p0) + p1, the VOP2 dot2c forms (D + p0) + p1.
 * neg_lo / neg_hi negate S0's and S1's low / high elements (the VOP2 forms keep neg_hi in the ABS field); S2 takes
 * no modifier; clamp clamps the result to [0, 1]. */
static inline float clamp01(float x) { return x != x || x <= 0 ? 0.0f : x > 1 ? 1.0f : x; } /* NaN, -0 -> +0 */

static int valu_dot_float(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op, bf16 = op == OP_V_DOT2_F32_BF16 || op == OP_V_DOT2C_F32_BF16;
  int vop3p = op == OP_V_DOT2_F32_BF16 || op == OP_V_DOT2_F32_F16;
  if (vop3p ? (in->flags >> F_OPSEL & 7) || ((in->flags >> F_OPSEL_HI) & 7) != 7 : (in->flags >> F_OPSEL & 15) ||
                                                                                   (in->flags >> F_OMOD & 3))
    return fail(c, E_UNIMPL, 0, "a floating-point dot product with op_sel, op_sel_hi or omod is not emulated");
  int neg = in->flags >> F_NEG & 3, neg_hi = (vop3p ? in->flags >> F_NEG_HI : in->flags >> F_ABS) & 3;
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    float e[2][2]; /* [source][element] */
    for (int i = 0; i < 2; i++)
      for (int k = 0; k < 2; k++) {
        uint32_t h = (o.s[i][l] >> (16 * k)) & 0xFFFF;
        if ((k ? neg_hi : neg) >> i & 1) h ^= 0x8000;
        e[i][k] = bf16 ? f32(h << 16) : (float)f16_of((uint16_t)h);
      }
    float p0 = e[0][0] * e[1][0], p1 = e[0][1] * e[1][1], acc = f32(o.s[2][l]), t;
    if (op == OP_V_DOT2_F32_BF16) {
      t = p0 + p1;
      t = t + acc;
    } else {
      t = acc + p0;
      t = t + p1;
    }
    res[l] = u32f(in->flags >> F_CLAMP & 1 ? clamp01(t) : t);
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

/* v_fma_mix_f32 / v_fma_mixlo_f16 / v_fma_mixhi_f16 (VOP3P, docs/facts.md §6.11): source i is fp32 when
 * op_sel_hi[i] is 0, else the fp16 half op_sel[i] picks; the neg_hi field is |x| and neg is -x; one fused fp32
 * multiply-add, which mixlo / mixhi round to fp16 into the low / high half of D (the other half kept). An inline or
 * literal float constant in an fp16 position is refused: which pattern it stands for there is not known to us. */
static int valu_fma_mix(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op, opsel = in->flags >> F_OPSEL & 7, half = in->flags >> F_OPSEL_HI & 7;
  int neg = in->flags >> F_NEG & 7, ab = in->flags >> F_NEG_HI & 7;
  for (int i = 0; i < 3; i++)
    if ((half >> i & 1) && in->src[i] > 208 && in->src[i] < 256)
      return fail(c, E_UNIMPL, 0, "v_fma_mix with a float constant as an fp16 source is not emulated");
  const uint32_t *old = vrow(w, in->dst);
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    float v[3];
    for (int i = 0; i < 3; i++) {
      uint32_t x = o.s[i][l];
      v[i] = !(half >> i & 1) ? f32(x) : (float)f16_of((uint16_t)((opsel >> i & 1) ? x >> 16 : x));
      if (ab >> i & 1) v[i] = fabsf(v[i]);
      if (neg >> i & 1) v[i] = -v[i];
    }
    float r = fmaf(v[0], v[1], v[2]);
    if (in->flags >> F_CLAMP & 1) r = clamp01(r);
    uint32_t h = f16_bits((_Float16)r);
    res[l] = op == OP_V_FMA_MIX_F32 ? u32f(r) : op == OP_V_FMA_MIXLO_F16 ? (old[l] & 0xFFFF0000u) | h
                                                                        : (old[l] & 0xFFFF) | h << 16;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

/* v_swap_b32 (VOP1, docs/facts.md §6.11): VDST and the VGPR SRC0 trade values in the EXEC lanes. */
static int valu_swap(ctx_t *c, wave_t *w, const insn_t *in) {
  if (in->flags & ((1u << F_SDWA) | (1u << F_DPP) | (1u << F_VOP3)))
    return fail(c, E_INVALID, 0, "v_swap_b32 has only the VOP1 encoding");
  if (in->src[0] < 256 || in->src[0] >= 256 + NV) return fail(c, E_INVALID, 0, "v_swap_b32 swaps two VGPRs");
  int src = in->src[0] - 256;
  if (check_v(c, w, src, 1, 0) || check_v(c, w, in->dst - 256, 1, 0) || vdst_check(c, w, in->dst, 1) ||
      check_v(c, w, src, 1, 1))
    return 1;
  uint64_t exec = exec_of(w);
  uint32_t *d = vrow(w, in->dst), *s = vrow(w, in->src[0]);
  for (int l = 0; l < LANES; l++)
    if (exec >> l & 1) {
      uint32_t t = d[l];
      d[l] = s[l];
      s[l] = t;
    }
  return 0;
}

/* v_qsad_pk_u16_u8, v_mqsad_pk_u16_u8, v_mqsad_u32_u8 (VOP3, docs/facts.md §6.11): the (masked) byte SAD of S1
 * against the four 4-byte windows of the 64-bit S0 that start at bytes 0..3, each added to element i of S2 (four
 * 16-bit elements of a pair, or four 32-bit ones of a quad) and truncated to its width; D as S2. */
static int valu_qsad(ctx_t *c, wave_t *w, const insn_t *in) {
  int op = in->op, wide = op == OP_V_MQSAD_U32_U8, masked = op != OP_V_QSAD_PK_U16_U8, nd = wide ? 4 : 2;
  uint32_t tl[3][LANES], th[3][LANES], t1[LANES], rows[4][LANES];
  const uint32_t *s0[2], *s1, *s2[4];
  if (vsrc64(c, w, in, in->src[0], tl[0], th[0], &s0[0], &s0[1]) || vsrc(c, w, in, in->src[1], t1, &s1) ||
      vsrc64(c, w, in, in->src[2], tl[1], th[1], &s2[0], &s2[1]))
    return 1;
  if (wide) {
    if (in->src[2] >= 128 && in->src[2] < 256) return fail(c, E_UNIMPL, 0, "v_mqsad_u32_u8 with a constant S2");
    if (vsrc64(c, w, in, in->src[2] + 2, tl[2], th[2], &s2[2], &s2[3])) return 1;
  }
  if (vdst_check(c, w, in->dst, nd)) return 1;
  for (int l = 0; l < LANES; l++) {
    uint64_t a = (uint64_t)s0[0][l] | (uint64_t)s0[1][l] << 32;
    for (int i = 0; i < 4; i++) {
      uint32_t win = (uint32_t)(a >> (8 * i));
      uint32_t acc = wide ? s2[i][l] : (s2[i / 2][l] >> (16 * (i & 1))) & 0xFFFF;
      uint32_t r = masked ? msad_u8(win, s1[l], acc) : sad_u8(win, s1[l], acc);
      if (wide) rows[i][l] = r;
      else if (i & 1) rows[i / 2][l] |= (r & 0xFFFF) << 16;
      else rows[i / 2][l] = r & 0xFFFF;
    }
  }
  uint64_t exec = exec_of(w);
  for (int r = 0; r < nd; r++) vwrite(w, in, in->dst + r, rows[r], exec);
  return 0;
}

/* Packed 16-bit math (VOP3P, docs/facts.md §6.6): each half of the result from the halves of the sources that
 * op_sel (low result) and op_sel_hi (high result) pick, neg / neg_hi negating the fp16 ones; clamp clamps fp16
 * to [0, 1] and saturates the integer adds and subtracts. An inline float constant is its fp16 value in the low
 * half, 0 in the high one. */
static inline uint32_t hminimum(uint32_t a, uint32_t b) { /* IEEE 754-2019 minimum, as ieee_minimum */
  if (is_nan16(a)) return a | 0x200;
  if (is_nan16(b)) return b | 0x200;
  if (((a | b) & 0x7FFF) == 0) return (a & 0x8000) ? a : b;
  return hf(a) < hf(b) ? a : b;
}

static inline uint32_t hmaximum(uint32_t a, uint32_t b) {
  if (is_nan16(a)) return a | 0x200;
  if (is_nan16(b)) return b | 0x200;
  if (((a | b) & 0x7FFF) == 0) return (a & 0x8000) ? b : a;
  return hf(a) > hf(b) ? a : b;
}

static uint32_t packed16_half(const insn_t *in, int op, uint32_t a, uint32_t b, uint32_t cc) {
  int clamp = in->flags >> F_CLAMP & 1;
  int32_t ia = (int16_t)a, ib = (int16_t)b, ic = (int16_t)cc, t;
  switch (op) {
    case OP_V_PK_ADD_F16: return hpost(in, hf(a) + hf(b));
    case OP_V_PK_MUL_F16: return hpost(in, hf(a) * hf(b));
    case OP_V_PK_FMA_F16: case OP_V_PK_FMAC_F16: return hpost(in, fma(hf(a), hf(b), hf(cc)));
    case OP_V_PK_MINIMUM3_F16: return hsel(in, hminimum(hminimum(a, b), cc));
    case OP_V_PK_MAXIMUM3_F16: return hsel(in, hmaximum(hmaximum(a, b), cc));
    case OP_V_PK_MAX_F16: return hsel(in, hmax(a, b));
    case OP_V_PK_MIN_F16: return hsel(in, hmin(a, b));
    case OP_V_PK_ADD_U16: t = (int32_t)(a + b); return clamp && t > 0xFFFF ? 0xFFFF : (uint32_t)t & 0xFFFF;
    case OP_V_PK_SUB_U16: return a < b ? (clamp ? 0 : (a - b) & 0xFFFF) : a - b;
    case OP_V_PK_ADD_I16: t = ia + ib; return (uint32_t)(clamp ? SAT(t, -32768, 32767) : t) & 0xFFFF;
    case OP_V_PK_SUB_I16: t = ia - ib; return (uint32_t)(clamp ? SAT(t, -32768, 32767) : t) & 0xFFFF;
    case OP_V_PK_MUL_LO_U16: return (a * b) & 0xFFFF;
    case OP_V_PK_LSHLREV_B16: return (b << (a & 15)) & 0xFFFF;
    case OP_V_PK_LSHRREV_B16: return b >> (a & 15);
    case OP_V_PK_ASHRREV_I16: return (uint32_t)(ib >> (a & 15)) & 0xFFFF;
    case OP_V_PK_MAX_I16: return (uint32_t)(ia > ib ? ia : ib) & 0xFFFF;
    case OP_V_PK_MIN_I16: return (uint32_t)(ia < ib ? ia : ib) & 0xFFFF;
    case OP_V_PK_MAX_U16: return a > b ? a : b;
    case OP_V_PK_MIN_U16: return a < b ? a : b;
    case OP_V_PK_MAD_U16: t = (int32_t)(a * b + cc); return clamp && (uint32_t)t > 0xFFFF ? 0xFFFF : (uint32_t)t & 0xFFFF;
    case OP_V_PK_MAD_I16: t = ia * ib + ic; return (uint32_t)(clamp ? SAT(t, -32768, 32767) : t) & 0xFFFF;
  }
  return 0;
}

static int valu_packed16(ctx_t *c, wave_t *w, const insn_t *in) {
  valu32_t o;
  if (valu32_operands(c, w, in, &o)) return 1;
  int op = in->op, fp = op == OP_V_PK_ADD_F16 || op == OP_V_PK_MUL_F16 || op == OP_V_PK_FMA_F16 ||
                        op == OP_V_PK_MAX_F16 || op == OP_V_PK_MIN_F16 || op == OP_V_PK_FMAC_F16 ||
                        op == OP_V_PK_MINIMUM3_F16 || op == OP_V_PK_MAXIMUM3_F16;
  for (int i = 0; i < 3; i++)
    if (fp && in->src[i] >= 240 && in->src[i] <= 248) {
      for (int l = 0; l < LANES; l++) o.t[i][l] = INLINE_F16[in->src[i] - 240];
      o.s[i] = o.t[i];
    }
  int opsel = (in->flags >> F_OPSEL) & 7, opsel_hi = (in->flags >> F_OPSEL_HI) & 7;
  int neg = (in->flags >> F_NEG) & 7, neg_hi = (in->flags >> F_NEG_HI) & 7;
  if (op == OP_V_PK_FMAC_F16) { /* VOP2 (docs/facts.md §6.11): low halves make the low result, high the high one */
    if ((in->flags >> F_OPSEL & 15) || neg || (in->flags >> F_ABS & 7))
      return fail(c, E_UNIMPL, 0, "v_pk_fmac_f16 with op_sel, neg or abs modifiers is not emulated");
    opsel_hi = 7;
  }
  uint32_t res[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t h[2][3];
    for (int i = 0; i < 3; i++) {
      uint32_t v = o.s[i][l];
      h[0][i] = (opsel >> i & 1 ? v >> 16 : v) & 0xFFFF;
      h[1][i] = (opsel_hi >> i & 1 ? v >> 16 : v) & 0xFFFF;
      if (fp) {
        if (neg >> i & 1) h[0][i] ^= 0x8000;
        if (neg_hi >> i & 1) h[1][i] ^= 0x8000;
      }
    }
    res[l] = packed16_half(in, op, h[0][0], h[0][1], h[0][2]) | packed16_half(in, op, h[1][0], h[1][1], h[1][2]) << 16;
  }
  vwrite(w, in, in->dst, res, o.exec);
  return 0;
}

static int valu_packed_f32(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec;
  int src_of[LANES], op = in->op, n = op == OP_V_PK_FMA_F32 ? 3 : 2;
  uint32_t tl[3][LANES], th[3][LANES], lo_o[LANES], hi_o[LANES];
  const uint32_t *lo[3], *hi[3];
  if (valu_lanes(c, w, in, &exec, src_of)) return 1;
  for (int i = 0; i < n; i++) {
    int code = in->src[i];
    if (code >= 128 && code != 255 && code < 256) { /* inline constant: same value in both halves */
      uint32_t v;
      if (sval(c, w, in, code, &v)) return 1;
      for (int l = 0; l < LANES; l++) tl[i][l] = th[i][l] = v;
      lo[i] = tl[i];
      hi[i] = th[i];
    } else if (vsrc64(c, w, in, code, tl[i], th[i], &lo[i], &hi[i]))
      return 1;
  }
  if (vdst_check(c, w, in->dst, 2)) return 1;
  int opsel = (in->flags >> F_OPSEL) & 7, opsel_hi = (in->flags >> F_OPSEL_HI) & 7;
  int neg = (in->flags >> F_NEG) & 7, neg_hi = (in->flags >> F_NEG_HI) & 7;
  for (int l = 0; l < LANES; l++) {
    float a[2][3];
    for (int i = 0; i < n; i++) {
      a[0][i] = f32((opsel >> i & 1) ? hi[i][l] : lo[i][l]);
      a[1][i] = f32((opsel_hi >> i & 1) ? hi[i][l] : lo[i][l]);
      if (op != OP_V_PK_MOV_B32) {
        if (neg >> i & 1) a[0][i] = -a[0][i];
        if (neg_hi >> i & 1) a[1][i] = -a[1][i];
      }
    }
    float r[2];
    for (int h = 0; h < 2; h++) {
      if (op == OP_V_PK_ADD_F32) r[h] = a[h][0] + a[h][1];
      else if (op == OP_V_PK_MUL_F32) r[h] = a[h][0] * a[h][1];
      else if (op == OP_V_PK_FMA_F32) r[h] = fmaf(a[h][0], a[h][1], a[h][2]);
      else r[h] = 0;
      if (op != OP_V_PK_MOV_B32 && (in->flags >> F_CLAMP & 1)) r[h] = fminf(fmaxf(r[h], 0.0f), 1.0f);
    }
    if (op == OP_V_PK_MOV_B32) {
      lo_o[l] = (opsel & 1) ? hi[0][l] : lo[0][l];
      hi_o[l] = (opsel & 2) ? hi[1][l] : lo[1][l];
    } else {
      lo_o[l] = u32f(r[0]);
      hi_o[l] = u32f(r[1]);
    }
  }
  vwrite(w, in, in->dst, lo_o, exec);
  vwrite(w, in, in->dst + 1, hi_o, exec);
  return 0;
}

/* ---- matrix ops: shape and register counts come from the opcode table (isa.MAI); no MFMA has a DPP form */

static int valu_mfma(ctx_t *c, wave_t *w, const insn_t *in) {
  const op_entry *e = &OPS[in->op];
  /* a constant block size lets the compiler unroll the operand gathers of each */
  if (e->m == 16 && e->n == 16) return mfma(c, w, in, 16, 16, e->k, e->ab_regs, e->cd_regs);
  if (e->m == 32 && e->n == 32) return mfma(c, w, in, 32, 32, e->k, e->ab_regs, e->cd_regs);
  return mfma(c, w, in, e->m, e->n, e->k, e->ab_regs, e->cd_regs);
}

/* ---- the general matrix op: the older layouts (several blocks; f32, f64 elements) and SMFMAC (docs/facts.md
 * §1.13, §1.14). One block/lane map serves every shape: with NB blocks and KL = K M NB / 64 consecutive k per
 * lane, A[i][k] of block b is item k % KL of lane i + M b + M NB (k / KL) (B likewise by column); an SMFMAC's A
 * is the same map over its K / 2 stored (compressed) columns. */

/* where D[i][j] of block b lives: register (an f64 element: register pair) and lane; H rows per register
 * group (4, or 1 for f64), 64 / N groups side by side, and a register holding the rows of BPR blocks */
static inline void matrix_out_pos(int M, int N, int b, int i, int j, int wide, int *reg, int *lane) {
  int H = wide ? 1 : 4, MR = 64 / N, BPR = M * N >= 64 * H ? 1 : 64 * H / (M * N);
  *reg = b * (M * N / 64) + (i / (H * MR)) * H + i % H;
  *lane = (b % BPR) * N + ((i / H) % MR) * BPR * N + j;
}

static inline double matrix_element(const uint32_t *row, int lane, int it, int el) {
  if (el == EL_F32) return f32(row[(size_t)it * LANES + lane]);
  if (el == EL_F64)
    return f64(row[(size_t)2 * it * LANES + lane] | (uint64_t)row[(size_t)(2 * it + 1) * LANES + lane] << 32);
  return mfma_element(row, lane, it, el);
}

/* acc + sum a[t] b[t] rounded once to double: each product splits exactly into p + e (fma), and the terms are
 * kept as non-overlapping partial sums (Shewchuk's exact summation) until one final correctly rounded add.
 * Infinite or NaN terms give IEEE's answer. */
static double exact_dot64(const double *a, const double *b, int n, double acc) {
  double naive = acc, terms[2 * 4 + 1], part[2 * 4 + 1];
  int nt = 0, np = 0;
  for (int t = 0; t < n; t++) {
    double p = a[t] * b[t];
    naive += p;
    terms[nt++] = p;
    terms[nt++] = fma(a[t], b[t], -p);
  }
  terms[nt++] = acc;
  if (!isfinite(naive) || !isfinite(acc)) return naive;
  for (int t = 0; t < nt; t++) {
    double x = terms[t];
    int m = 0;
    for (int q = 0; q < np; q++) {
      double y = part[q];
      if (fabs(x) < fabs(y)) { double tmp = x; x = y; y = tmp; }
      double hi = x + y, lo = y - (hi - x);
      if (lo != 0.0) part[m++] = lo;
      x = hi;
    }
    part[m++] = x;
    np = m;
  }
  double hi = part[--np], lo = 0.0;
  while (np > 0) {
    double x = hi, y = part[--np];
    hi = x + y;
    lo = y - (hi - x);
    if (lo != 0.0) break;
  }
  /* a half-way case the top two partials hide: the next partial decides the rounding */
  if (np > 0 && ((lo < 0 && part[np - 1] < 0) || (lo > 0 && part[np - 1] > 0))) {
    double y = 2 * lo, x = hi + y;
    if (y == x - hi) hi = x;
  }
  return hi == 0.0 && naive == 0.0 ? naive : hi; /* an exact zero keeps IEEE's sign of zero */
}

static int matrix_op(ctx_t *c, wave_t *w, const insn_t *in, int sparse) {
  const op_entry *e = &OPS[in->op];
  int M = e->m, N = e->n, K = e->k, ea = e->elem_a, eb = e->elem_b;
  /* a dense lane holds 32 ab_regs / width elements of A, all of one block's K when there are several blocks,
   * so the block count follows from the table: NB = 64 (items per lane) / (K M); SMFMACs have one block */
  static const int width[] = {16, 16, 8, 8, 8, 32, 64}; /* isa.MFMA_ELEMENTS */
  int NB = sparse ? 1 : 64 * (32 * e->ab_regs / width[ea]) / (K * M);
  int wide = ea == EL_F64, integer = ea == EL_I8, nb = e->ab_regs, na = sparse ? nb / 2 : nb, ncd = e->cd_regs;
  int cbsz = in->imm & 7, abid = (in->imm >> 4) & 15, blgp = (in->imm >> 8) & 7;
  int KA = sparse ? K / 2 : K, KLa = KA * M * NB / 64, KLb = K * N * NB / 64, log_nb = 0, set = 0;
  while ((1 << log_nb) < NB) log_nb++;
  if (in->src[0] < 256 || in->src[1] < 256)
    return fail(c, E_INVALID, 0, "MFMA A and B operands must be vector registers");
  if (sparse) {
    /* the index register holds 32 / (2 KLa) sets of 2-bit indices; ABID picks one when CBSZ is 0 (§1.14) */
    int nsets = 32 / (2 * KLa);
    if (in->src[2] < 256) return fail(c, E_INVALID, 0, "SMFMAC compression indices (SRC2) must be a VGPR");
    if (blgp) return fail(c, E_INVALID, 0, "SMFMAC with BLGP %d: the ISA defines no B lane pattern for it", blgp);
    if (!cbsz && abid >= nsets)
      return fail(c, E_INVALID, 0, "SMFMAC with ABID %d: this shape's index register holds %d index sets", abid,
                  nsets);
    set = cbsz ? 0 : abid;
  } else if (wide ? cbsz || abid : cbsz > log_nb || abid >= (1 << cbsz)) {
    return fail(c, E_INVALID, 0, "MFMA with CBSZ %d / ABID %d: undefined for this %d-block MFMA", cbsz, abid, NB);
  }
  int ra = in->src[0] - 256, rb = in->src[1] - 256;
  if (check_v(c, w, ra, na, 0) || check_v(c, w, rb, nb, 0)) return 1;
  int csrc = sparse ? in->dst : in->src[2]; /* an SMFMAC accumulates into D itself */
  if (sparse && check_v(c, w, in->src[2] - 256, 1, 0)) return 1;
  c->role = ROLE_SRCC;
  int bad = csrc >= 256 && check_v(c, w, csrc - 256, ncd, 0);
  c->role = ROLE_PLAIN;
  if (bad || vdst_check(c, w, in->dst, ncd)) return 1;
  /* f64 ops read BLGP as negate bits for A, B and C */
  double sa = wide && (blgp & 1) ? -1.0 : 1.0, sb = wide && (blgp & 2) ? -1.0 : 1.0;
  double sc = wide && (blgp & 4) ? -1.0 : 1.0;
  const uint32_t *va = &w->v[(size_t)ra * LANES], *vb = &w->v[(size_t)rb * LANES];
  const uint32_t *vidx = sparse ? &w->v[(size_t)(in->src[2] - 256) * LANES] : NULL;
  double At[2048], Bm[2048], D[2048]; /* [b][k][i], [b][k][j], [b][i][j]: at most 2048 entries each */
  memset(At, 0, sizeof(double) * NB * K * M);
  for (int b = 0; b < NB; b++) {
    int bs = sparse ? b : (b & ~((1 << cbsz) - 1)) + abid; /* CBSZ/ABID: the block A is read from */
    for (int k = 0; k < KA; k++)
      for (int i = 0; i < M; i++) {
        int lane = i + M * bs + M * NB * (k / KLa), it = k % KLa;
        double x = sa * matrix_element(va, lane, it, ea);
        /* a stored value of group k / 2 sits at dense column 4 (k / 2) + its 2-bit index */
        int kd = sparse ? 4 * (k / 2) + (int)(vidx[lane] >> (2 * KLa * set + 2 * it) & 3) : k;
        At[((size_t)b * K + kd) * M + i] += x;
      }
    for (int k = 0; k < K; k++)
      for (int j = 0; j < N; j++) {
        int lane = j + N * b + N * NB * (k / KLb);
        Bm[((size_t)b * K + k) * N + j] = sb * matrix_element(vb, wide ? lane : blgp_lane(lane, blgp), k % KLb, eb);
      }
  }
  uint32_t cconst = 0;
  uint64_t cconst64 = 0;
  if (csrc < 256 && (wide ? sval64(c, w, in, csrc, &cconst64) : sval(c, w, in, csrc, &cconst))) return 1;
  for (int b = 0; b < NB; b++)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        int reg, lane;
        matrix_out_pos(M, N, b, i, j, wide, &reg, &lane);
        double x;
        if (wide) {
          uint64_t u = csrc < 256 ? cconst64
                                  : w->v[(size_t)(csrc - 256 + 2 * reg) * LANES + lane] |
                                        (uint64_t)w->v[(size_t)(csrc - 256 + 2 * reg + 1) * LANES + lane] << 32;
          x = sc * f64(u);
        } else {
          uint32_t u = csrc < 256 ? cconst : w->v[(size_t)(csrc - 256 + reg) * LANES + lane];
          x = integer ? (double)(int32_t)u : f32(u);
        }
        D[((size_t)b * M + i) * N + j] = x;
      }
  uint32_t out[32 * LANES];
  for (int b = 0; b < NB; b++)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double *d = &D[((size_t)b * M + i) * N + j];
        if (wide) {
          double a[4], bv[4];
          for (int k = 0; k < K; k++) {
            a[k] = At[((size_t)b * K + k) * M + i];
            bv[k] = Bm[((size_t)b * K + k) * N + j];
          }
          *d = exact_dot64(a, bv, K, *d);
        } else { /* products of these elements are exact in double; i8 sums too, wrapped below */
          for (int k = 0; k < K; k++) *d += At[((size_t)b * K + k) * M + i] * Bm[((size_t)b * K + k) * N + j];
        }
        int reg, lane;
        matrix_out_pos(M, N, b, i, j, wide, &reg, &lane);
        if (wide) {
          uint64_t u = bits64(*d);
          out[(size_t)2 * reg * LANES + lane] = (uint32_t)u;
          out[(size_t)(2 * reg + 1) * LANES + lane] = (uint32_t)(u >> 32);
        } else {
          out[(size_t)reg * LANES + lane] = integer ? (uint32_t)(int64_t)*d : u32f((float)*d);
        }
      }
  for (int r = 0; r < ncd; r++) memcpy(vrow(w, in->dst + r), out + r * LANES, LANES * 4); /* EXEC ignored */
  return 0;
}

/* ---- the f8f6f4 MFMAs and their scaled forms (docs/facts.md §1.15): CBSZ and BLGP give A's and B's formats (NF_FP8
 * .. NF_FP4) and so their register counts; the scaled forms multiply each 32-deep K block of A's rows and B's
 * columns by an E8M0 scale before the sums. */

static inline int nf_regs(int f) { return f <= NF_BF8 ? 8 : f <= NF_BF6 ? 6 : 4; }

/* The scale byte lane l gives the A (which 0) or B (1) operand: the byte OP_SEL/OP_SEL_HI select of a register or
 * SGPR; an inline float constant gives its exponent (CDNA4 ISA §7.2). */
static int mfma_scales(ctx_t *c, wave_t *w, const insn_t *in, int which, uint32_t out[LANES]) {
  int code = which ? (in->imm2 >> 16) & 0xFFFF : in->imm2 & 0xFFFF;
  int sel = (in->flags >> (F_OPSEL + which) & 1) | (in->flags >> (F_OPSEL_HI + which) & 1) << 1;
  if (code == 255) return fail(c, E_INVALID, 0, "a scaled MFMA's scale operand may not be a literal");
  uint32_t tmp[LANES];
  const uint32_t *row;
  if (vsrc(c, w, in, code, tmp, &row)) return 1;
  for (int l = 0; l < LANES; l++)
    out[l] = code >= 240 && code <= 248 ? (row[l] >> 23) & 0xFF : (row[l] >> (8 * sel)) & 0xFF;
  return 0;
}

static int mfma_f8f6f4(ctx_t *c, wave_t *w, const insn_t *in, int M, int N, int K, int ncd) {
  int fa = in->imm & 7, abid = (in->imm >> 4) & 15, fb = (in->imm >> 8) & 7;
  int scale_form = in->op == OP_V_MFMA_SCALE_F32_16X16X128_F8F6F4 || in->op == OP_V_MFMA_SCALE_F32_32X32X64_F8F6F4;
  if (fa > NF_FP4 || fb > NF_FP4)
    return fail(c, E_INVALID, 0, "f8f6f4 MFMA with CBSZ %d / BLGP %d: formats are 0-4 (fp8 bf8 fp6 bf6 fp4)", fa, fb);
  if (abid & ~scale_form)
    return fail(c, E_INVALID, 0, "f8f6f4 MFMA with ABID %d: only a scaled form's ABID bit 0 is defined", abid);
  if (in->src[0] < 256 || in->src[1] < 256)
    return fail(c, E_INVALID, 0, "MFMA A and B operands must be vector registers");
  int ra = in->src[0] - 256, rb = in->src[1] - 256;
  if (check_v(c, w, ra, nf_regs(fa), 0) || check_v(c, w, rb, nf_regs(fb), 0)) return 1;
  uint32_t sa[LANES], sb[LANES];
  int scaled = scale_form && (abid & 1); /* ABID bit 0 clear: every scale is 1.0 */
  if (scaled && (mfma_scales(c, w, in, 0, sa) || mfma_scales(c, w, in, 1, sb))) return 1;
  c->role = ROLE_SRCC;
  int bad = in->src[2] >= 256 && check_v(c, w, in->src[2] - 256, ncd, 0);
  c->role = ROLE_PLAIN;
  if (bad || vdst_check(c, w, in->dst, ncd)) return 1;
  /* A[i][k] is item it of lane i + M*g: 6- and 4-bit formats k = 32g + it; 8-bit ones hold two 16-deep runs,
   * k = 16g + it for it < 16 and K/2 + 16g + it - 16 above (CDNA4 ISA §7.1.5.1). B likewise by column. */
  double At[128][32], B[128][32], D[32][32];
  const uint32_t *va = &w->v[(size_t)ra * LANES], *vb = &w->v[(size_t)rb * LANES];
  int G = 64 / M, wa = NF[fa].bits, wb = NF[fb].bits;
  for (int g = 0; g < G; g++)
    for (int it = 0; it < 32; it++) {
      int ka = wa == 8 ? (it / 16) * (K / 2) + 16 * g + it % 16 : 32 * g + it;
      int kb = wb == 8 ? (it / 16) * (K / 2) + 16 * g + it % 16 : 32 * g + it;
      for (int i = 0; i < M; i++) {
        int l = i + M * g;
        At[ka][i] = nf_decode(lane_bits(va, l, it * wa, wa), fa) * (scaled ? e8m0(sa[i + M * (ka / 32)]) : 1.0);
        B[kb][i] = nf_decode(lane_bits(vb, l, it * wb, wb), fb) * (scaled ? e8m0(sb[i + N * (kb / 32)]) : 1.0);
      }
    }
  /* C and D: the layout of the other MFMAs of the shape (see mfma()) */
  int MI = 64 / N;
  uint32_t cconst = 0;
  if (in->src[2] < 256 && sval(c, w, in, in->src[2], &cconst)) return 1;
  for (int i = 0; i < M; i++) {
    int lane0 = N * ((i / 4) % MI), reg = (i % 4) + 4 * (i / (4 * MI));
    const uint32_t *row = in->src[2] >= 256 ? &w->v[(size_t)(in->src[2] - 256 + reg) * LANES + lane0] : NULL;
    for (int j = 0; j < N; j++) D[i][j] = f32(row ? row[j] : cconst);
  }
  if (N == 16) mfma_sum16(D, At, B, M, K); /* scaled elements and their products are exact in double */
  else mfma_sum32(D, At, B, M, K);
  uint32_t out[16 * LANES];
  for (int i = 0; i < M; i++) {
    int lane0 = N * ((i / 4) % MI), reg = (i % 4) + 4 * (i / (4 * MI));
    for (int j = 0; j < N; j++) out[reg * LANES + lane0 + j] = u32f((float)D[i][j]); /* one RNE rounding */
  }
  for (int r = 0; r < ncd; r++) memcpy(vrow(w, in->dst + r), out + r * LANES, LANES * 4); /* EXEC ignored */
  return 0;
}

static int valu_mfma_blocks(ctx_t *c, wave_t *w, const insn_t *in) { return matrix_op(c, w, in, 0); }
static int valu_smfmac(ctx_t *c, wave_t *w, const insn_t *in) { return matrix_op(c, w, in, 1); }
static int valu_mfma_f8f6f4(ctx_t *c, wave_t *w, const insn_t *in) {
  const op_entry *e = &OPS[in->op];
  if (e->m == 16) return mfma_f8f6f4(c, w, in, 16, 16, e->k, e->cd_regs);
  return mfma_f8f6f4(c, w, in, 32, 32, e->k, e->cd_regs);
}

/* v_mfma_ld_scale_b32 is defined only as the first half of a scaled MFMA, which the decoder joins with the MFMA
 * that follows it; one that no f8f6f4 MFMA follows has no defined effect. */
static int mfma_ld_scale_alone(ctx_t *c, wave_t *w, const insn_t *in) {
  return fail(c, E_INVALID, 0, "v_mfma_ld_scale_b32 not followed by an f8f6f4 MFMA: the ISA defines it only as "
              "the first half of v_mfma_scale_f32_*_f8f6f4");
}

/* Continue at byte address `target` of the program (branch targets, s_setpc/s_swappc/s_call): it must be the
 * start of one of the kernel's instructions. */
static int jump(ctx_t *c, int64_t target) {
  emu_launch *L = c->L;
  int64_t word = (target - (int64_t)L->code_base) / 4;
  if (target < (int64_t)L->code_base || (target & 3) || word >= L->code_words || L->index[word] < 0)
    return fail(c, E_INVALID, (uint64_t)target, "jump to %#llx, which is not an instruction of the kernel",
                (unsigned long long)target);
  c->next = L->index[word];
  return 0;
}

/* ---------------------------------------------------------------- SALU */

#define S32(n) (sval(c, w, in, in->src[n], n ? &b : &a))
#define S64(n) (sval64(c, w, in, in->src[n], n ? &B : &A))

static int salu_unhandled(ctx_t *c) {
  return fail(c, E_UNIMPL, 0, "scalar instruction not implemented by the execution core");
}

/* s_mov, s_cmov, s_movk, s_cmovk, s_cselect, s_getpc */
static int salu_move(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b = 0;
  uint64_t A = 0, B = 0;
  switch (in->op) {
    case OP_S_MOV_B32: if (S32(0)) return 1; return swrite(c, w, in->dst, a);
    case OP_S_MOV_B64: if (S64(0)) return 1; return swrite64(c, w, in->dst, A);
    case OP_S_CMOV_B32: if (S32(0)) return 1; return w->scc ? swrite(c, w, in->dst, a) : 0;
    case OP_S_CMOV_B64: if (S64(0)) return 1; return w->scc ? swrite64(c, w, in->dst, A) : 0;
    case OP_S_MOVK_I32: return swrite(c, w, in->dst, (uint32_t)(int32_t)(int16_t)in->imm);
    case OP_S_CMOVK_I32: return w->scc ? swrite(c, w, in->dst, (uint32_t)(int32_t)(int16_t)in->imm) : 0;
    case OP_S_CSELECT_B32: if (S32(0) || S32(1)) return 1; return swrite(c, w, in->dst, w->scc ? a : b);
    case OP_S_CSELECT_B64: if (S64(0) || S64(1)) return 1; return swrite64(c, w, in->dst, w->scc ? A : B);
    case OP_S_GETPC_B64: return swrite64(c, w, in->dst, c->L->image_base + in->pc + in->size);
    default: return salu_unhandled(c);
  }
}

/* two-source 32-bit arithmetic (SOP2) */
static int salu_arith(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b = 0, r;
  int scc = w->scc;
  if (S32(0) || S32(1)) return 1;
  uint64_t q;
  int64_t sq;
  switch (in->op) {
    case OP_S_ADD_U32: q = (uint64_t)a + b; r = (uint32_t)q; scc = q >> 32; break;
    case OP_S_SUB_U32: r = a - b; scc = b > a; break;
    case OP_S_ADD_I32: sq = (int64_t)(int32_t)a + (int32_t)b; r = (uint32_t)sq; scc = sq != (int32_t)r; break;
    case OP_S_SUB_I32: sq = (int64_t)(int32_t)a - (int32_t)b; r = (uint32_t)sq; scc = sq != (int32_t)r; break;
    case OP_S_ADDC_U32: q = (uint64_t)a + b + (uint64_t)w->scc; r = (uint32_t)q; scc = q >> 32; break;
    case OP_S_SUBB_U32: r = a - b - (uint32_t)w->scc; scc = (uint64_t)b + (uint64_t)w->scc > a; break;
    case OP_S_MIN_I32: scc = (int32_t)a < (int32_t)b; r = scc ? a : b; break;
    case OP_S_MIN_U32: scc = a < b; r = scc ? a : b; break;
    case OP_S_MAX_I32: scc = (int32_t)a >= (int32_t)b; r = scc ? a : b; break; /* ISA: SCC = S0 >= S1 */
    case OP_S_MAX_U32: scc = a >= b; r = scc ? a : b; break;
    case OP_S_MUL_I32: r = a * b; break;
    case OP_S_MUL_HI_U32: r = (uint32_t)(((uint64_t)a * b) >> 32); break;
    case OP_S_MUL_HI_I32: r = (uint32_t)(((int64_t)(int32_t)a * (int32_t)b) >> 32); break;
    case OP_S_ABSDIFF_I32: /* the difference wraps to 32 bits before the sign test (ISA examples) */
      r = a - b;
      if ((int32_t)r < 0) r = 0u - r;
      scc = r != 0;
      break;
    case OP_S_LSHL1_ADD_U32: case OP_S_LSHL2_ADD_U32: case OP_S_LSHL3_ADD_U32: case OP_S_LSHL4_ADD_U32:
      q = ((uint64_t)a << OPS[in->op].shift) + b;
      r = (uint32_t)q;
      scc = q >> 32 != 0;
      break;
    default: return salu_unhandled(c);
  }
  w->scc = scc;
  return swrite(c, w, in->dst, r);
}

/* s_addk_i32, s_mulk_i32: the SOPK immediate is the second operand */
static int salu_arith_imm(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b;
  if (S32(0)) return 1;
  switch (in->op) {
    case OP_S_ADDK_I32: {
      int64_t sq = (int64_t)(int32_t)a + (int16_t)in->imm;
      w->scc = sq != (int32_t)(uint32_t)sq;
      return swrite(c, w, in->dst, (uint32_t)sq);
    }
    case OP_S_MULK_I32: return swrite(c, w, in->dst, a * (uint32_t)(int32_t)(int16_t)in->imm);
    default: return salu_unhandled(c);
  }
}

/* two-source 32-bit logic, shifts, bit fields and packing (SOP2) */
static int salu_bit(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b = 0, r;
  int scc = w->scc;
  if (S32(0) || S32(1)) return 1;
  switch (in->op) {
    case OP_S_AND_B32: r = a & b; scc = r != 0; break;
    case OP_S_OR_B32: r = a | b; scc = r != 0; break;
    case OP_S_XOR_B32: r = a ^ b; scc = r != 0; break;
    case OP_S_ANDN2_B32: r = a & ~b; scc = r != 0; break;
    case OP_S_ORN2_B32: r = a | ~b; scc = r != 0; break;
    case OP_S_NAND_B32: r = ~(a & b); scc = r != 0; break;
    case OP_S_NOR_B32: r = ~(a | b); scc = r != 0; break;
    case OP_S_XNOR_B32: r = ~(a ^ b); scc = r != 0; break;
    case OP_S_LSHL_B32: r = a << (b & 31); scc = r != 0; break;
    case OP_S_LSHR_B32: r = a >> (b & 31); scc = r != 0; break;
    case OP_S_ASHR_I32: r = (uint32_t)((int32_t)a >> (b & 31)); scc = r != 0; break;
    case OP_S_BFM_B32: r = (uint32_t)(((1ull << (a & 31)) - 1) << (b & 31)); break;
    case OP_S_BFE_U32: {
      uint32_t o = b & 31, wd = (b >> 16) & 0x7F;
      r = wd == 0 ? 0 : wd >= 32 ? a >> o : (a >> o) & ((1u << wd) - 1);
      scc = r != 0;
      break;
    }
    case OP_S_BFE_I32: {
      uint32_t o = b & 31, wd = (b >> 16) & 0x7F;
      if (wd == 0) r = 0;
      else {
        int64_t v = ((int64_t)(int32_t)a) >> o;
        if (wd < 32) v = (int64_t)((uint64_t)v << (64 - wd)) >> (64 - wd);
        r = (uint32_t)v;
      }
      scc = r != 0;
      break;
    }
    case OP_S_PACK_LL_B32_B16: r = (a & 0xFFFF) | (b << 16); break;
    case OP_S_PACK_LH_B32_B16: r = (a & 0xFFFF) | (b & 0xFFFF0000u); break;
    case OP_S_PACK_HH_B32_B16: r = (a >> 16) | (b & 0xFFFF0000u); break;
    default: return salu_unhandled(c);
  }
  w->scc = scc;
  return swrite(c, w, in->dst, r);
}

/* 64-bit logic and shifts (SOP2) */
static int salu_bit64(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b = 0;
  uint64_t A = 0, B = 0, R;
  int op = in->op;
  if (op == OP_S_BFM_B64) { /* no SCC */
    if (S32(0) || S32(1)) return 1;
    return swrite64(c, w, in->dst, ((1ull << (a & 63)) - 1) << (b & 63));
  }
  if (op == OP_S_LSHL_B64 || op == OP_S_LSHR_B64 || op == OP_S_ASHR_I64) {
    if (S64(0) || S32(1)) return 1;
    R = op == OP_S_LSHL_B64 ? A << (b & 63) : op == OP_S_LSHR_B64 ? A >> (b & 63) : (uint64_t)((int64_t)A >> (b & 63));
  } else if (op == OP_S_BFE_U64 || op == OP_S_BFE_I64) { /* S1: offset in [5:0], width in [22:16] */
    if (S64(0) || S32(1)) return 1;
    uint32_t o = b & 63, wd = (b >> 16) & 0x7F;
    if (wd == 0) R = 0;
    else if (op == OP_S_BFE_U64) R = wd >= 64 ? A >> o : (A >> o) & ((1ull << wd) - 1);
    else {
      int64_t v = (int64_t)A >> o;
      if (wd < 64) v = (int64_t)((uint64_t)v << (64 - wd)) >> (64 - wd);
      R = (uint64_t)v;
    }
  } else {
    if (S64(0) || S64(1)) return 1;
    switch (op) {
      case OP_S_AND_B64: R = A & B; break;
      case OP_S_OR_B64: R = A | B; break;
      case OP_S_XOR_B64: R = A ^ B; break;
      case OP_S_ANDN2_B64: R = A & ~B; break;
      case OP_S_ORN2_B64: R = A | ~B; break;
      case OP_S_NAND_B64: R = ~(A & B); break;
      case OP_S_NOR_B64: R = ~(A | B); break;
      case OP_S_XNOR_B64: R = ~(A ^ B); break;
      default: return salu_unhandled(c);
    }
  }
  w->scc = R != 0;
  return swrite64(c, w, in->dst, R);
}

/* one-source bit and sign ops (SOP1) */
static int salu_unary(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b, r = 0;
  uint64_t A = 0, B, R;
  switch (in->op) {
    case OP_S_NOT_B32: if (S32(0)) return 1; r = ~a; w->scc = r != 0; return swrite(c, w, in->dst, r);
    case OP_S_NOT_B64: if (S64(0)) return 1; R = ~A; w->scc = R != 0; return swrite64(c, w, in->dst, R);
    case OP_S_BREV_B32:
      if (S32(0)) return 1;
      for (int i = 0; i < 32; i++) r |= ((a >> i) & 1u) << (31 - i);
      return swrite(c, w, in->dst, r);
    case OP_S_BCNT1_I32_B32:
      if (S32(0)) return 1;
      r = (uint32_t)__builtin_popcount(a);
      w->scc = r != 0;
      return swrite(c, w, in->dst, r);
    case OP_S_BCNT1_I32_B64:
      if (S64(0)) return 1;
      r = (uint32_t)__builtin_popcountll(A);
      w->scc = r != 0;
      return swrite(c, w, in->dst, r);
    case OP_S_FF1_I32_B32: if (S32(0)) return 1; return swrite(c, w, in->dst, a ? (uint32_t)__builtin_ctz(a) : 0xFFFFFFFFu);
    case OP_S_FF1_I32_B64: if (S64(0)) return 1; return swrite(c, w, in->dst, A ? (uint32_t)__builtin_ctzll(A) : 0xFFFFFFFFu);
    case OP_S_FLBIT_I32_B32: if (S32(0)) return 1; return swrite(c, w, in->dst, a ? (uint32_t)__builtin_clz(a) : 0xFFFFFFFFu);
    case OP_S_SEXT_I32_I8: if (S32(0)) return 1; return swrite(c, w, in->dst, (uint32_t)(int32_t)(int8_t)a);
    case OP_S_SEXT_I32_I16: if (S32(0)) return 1; return swrite(c, w, in->dst, (uint32_t)(int32_t)(int16_t)a);
    case OP_S_ABS_I32: if (S32(0)) return 1; r = (int32_t)a < 0 ? -a : a; w->scc = r != 0; return swrite(c, w, in->dst, r);
    case OP_S_BREV_B64:
      if (S64(0)) return 1;
      R = 0;
      for (int i = 0; i < 64; i++) R |= ((A >> i) & 1ull) << (63 - i);
      return swrite64(c, w, in->dst, R);
    case OP_S_BCNT0_I32_B32: if (S32(0)) return 1; r = 32u - (uint32_t)__builtin_popcount(a); w->scc = r != 0; return swrite(c, w, in->dst, r);
    case OP_S_BCNT0_I32_B64: if (S64(0)) return 1; r = 64u - (uint32_t)__builtin_popcountll(A); w->scc = r != 0; return swrite(c, w, in->dst, r);
    case OP_S_FF0_I32_B32: if (S32(0)) return 1; return swrite(c, w, in->dst, ~a ? (uint32_t)__builtin_ctz(~a) : 0xFFFFFFFFu);
    case OP_S_FF0_I32_B64: if (S64(0)) return 1; return swrite(c, w, in->dst, ~A ? (uint32_t)__builtin_ctzll(~A) : 0xFFFFFFFFu);
    case OP_S_FLBIT_I32_B64: if (S64(0)) return 1; return swrite(c, w, in->dst, A ? (uint32_t)__builtin_clzll(A) : 0xFFFFFFFFu);
    case OP_S_FLBIT_I32: /* leading bits equal to the sign bit; -1 for 0 and -1 */
      if (S32(0)) return 1;
      r = (int32_t)a < 0 ? ~a : a;
      return swrite(c, w, in->dst, r ? (uint32_t)__builtin_clz(r) : 0xFFFFFFFFu);
    case OP_S_FLBIT_I32_I64:
      if (S64(0)) return 1;
      R = (int64_t)A < 0 ? ~A : A;
      return swrite(c, w, in->dst, R ? (uint32_t)__builtin_clzll(R) : 0xFFFFFFFFu);
    case OP_S_BITSET0_B32: case OP_S_BITSET1_B32: /* the destination's bit S0[4:0] */
      if (S32(0) || sval(c, w, in, in->dst, &r)) return 1;
      r = in->op == OP_S_BITSET1_B32 ? r | 1u << (a & 31) : r & ~(1u << (a & 31));
      return swrite(c, w, in->dst, r);
    case OP_S_BITSET0_B64: case OP_S_BITSET1_B64:
      if (S32(0) || sval64(c, w, in, in->dst, &R)) return 1;
      R = in->op == OP_S_BITSET1_B64 ? R | 1ull << (a & 63) : R & ~(1ull << (a & 63));
      return swrite64(c, w, in->dst, R);
    case OP_S_WQM_B32: case OP_S_QUADMASK_B32: /* per 4-bit group: any bit set -> all four (wqm) or one bit */
      if (S32(0)) return 1;
      for (int q = 0; q < 8; q++)
        if (a >> (4 * q) & 0xF) r |= in->op == OP_S_WQM_B32 ? 0xFu << (4 * q) : 1u << q;
      w->scc = r != 0;
      return swrite(c, w, in->dst, r);
    case OP_S_WQM_B64: case OP_S_QUADMASK_B64:
      if (S64(0)) return 1;
      R = 0;
      for (int q = 0; q < 16; q++)
        if (A >> (4 * q) & 0xF) R |= in->op == OP_S_WQM_B64 ? 0xFull << (4 * q) : 1ull << q;
      w->scc = R != 0;
      return swrite64(c, w, in->dst, R);
    case OP_S_BITREPLICATE_B64_B32: /* each bit of S0 twice */
      if (S32(0)) return 1;
      R = 0;
      for (int i = 0; i < 32; i++) R |= (uint64_t)((a >> i) & 1u) * 3ull << (2 * i);
      return swrite64(c, w, in->dst, R);
    default: return salu_unhandled(c);
  }
}

/* s_<op>_saveexec_b64: the old EXEC to the destination, EXEC = op(S0, EXEC), SCC = EXEC != 0 */
static int salu_saveexec(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t A, R;
  if (sval64(c, w, in, in->src[0], &A)) return 1;
  uint64_t e = exec_of(w);
  if (in->op == OP_S_ANDN1_WREXEC_B64 || in->op == OP_S_ANDN2_WREXEC_B64) { /* the new EXEC to the destination */
    R = in->op == OP_S_ANDN1_WREXEC_B64 ? ~A & e : A & ~e;
    w->s[126] = (uint32_t)R;
    w->s[127] = (uint32_t)(R >> 32);
    w->scc = R != 0;
    return swrite64(c, w, in->dst, R);
  }
  switch (in->op) {
    case OP_S_AND_SAVEEXEC_B64: R = A & e; break;
    case OP_S_OR_SAVEEXEC_B64: R = A | e; break;
    case OP_S_XOR_SAVEEXEC_B64: R = A ^ e; break;
    case OP_S_ANDN2_SAVEEXEC_B64: R = A & ~e; break;
    case OP_S_ORN2_SAVEEXEC_B64: R = A | ~e; break;
    case OP_S_NAND_SAVEEXEC_B64: R = ~(A & e); break;
    case OP_S_NOR_SAVEEXEC_B64: R = ~(A | e); break;
    case OP_S_XNOR_SAVEEXEC_B64: R = ~(A ^ e); break;
    case OP_S_ANDN1_SAVEEXEC_B64: R = ~A & e; break;
    case OP_S_ORN1_SAVEEXEC_B64: R = ~A | e; break;
    default: return salu_unhandled(c);
  }
  if (swrite64(c, w, in->dst, e)) return 1;
  w->s[126] = (uint32_t)R;
  w->s[127] = (uint32_t)(R >> 32);
  w->scc = R != 0;
  return 0;
}

/* s_cmp_*: SCC = the table's condition (CMP_INT's numbering) on two sources of the table's type */
static int salu_compare(ctx_t *c, wave_t *w, const insn_t *in) {
  const op_entry *e = &OPS[in->op];
  uint32_t a = 0, b = 0;
  uint64_t A = 0, B = 0;
  if (e->type == CT_U64) {
    if (S64(0) || S64(1)) return 1;
    w->scc = CMP_INT(e->cond, A, B);
  } else {
    if (S32(0) || S32(1)) return 1;
    w->scc = e->type == CT_I32 ? CMP_INT(e->cond, (int32_t)a, (int32_t)b) : CMP_INT(e->cond, a, b);
  }
  return 0;
}

/* s_cmpk_*: the same against the SOPK immediate, sign- or zero-extended by the type */
static int salu_compare_imm(ctx_t *c, wave_t *w, const insn_t *in) {
  const op_entry *e = &OPS[in->op];
  uint32_t a = 0, b;
  if (S32(0)) return 1;
  if (e->type == CT_I32) w->scc = CMP_INT(e->cond, (int32_t)a, (int32_t)(int16_t)in->imm);
  else w->scc = CMP_INT(e->cond, a, (uint32_t)(in->imm & 0xFFFF));
  return 0;
}

/* s_bitcmp0/1_b32: SCC = whether bit S1[4:0] of S0 equals the table's bit value */
static int salu_bitcmp(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b = 0;
  uint64_t A = 0, B;
  if (OPS[in->op].type == CT_U64) { /* s_bitcmp*_b64: bit S1[5:0] of a 64-bit S0 */
    if (S64(0) || S32(1)) return 1;
    w->scc = ((A >> (b & 63)) & 1) == OPS[in->op].cond;
    return 0;
  }
  if (S32(0) || S32(1)) return 1;
  w->scc = ((a >> (b & 31)) & 1) == OPS[in->op].cond;
  return 0;
}

/* s_movrels: D = SGPR[S0 + M0]; s_movreld: SGPR[D + M0] = S0 (docs/facts.md §13.2). The register indexed must
 * stay within s0..s101. */
static int salu_movrel(ctx_t *c, wave_t *w, const insn_t *in) {
  int wide = in->op == OP_S_MOVRELS_B64 || in->op == OP_S_MOVRELD_B64;
  int reld = in->op == OP_S_MOVRELD_B32 || in->op == OP_S_MOVRELD_B64;
  int base = reld ? in->dst : in->src[0];
  uint64_t at = (uint64_t)(uint32_t)base + w->s[124];
  if (base < 0 || base > 101 || at + (wide ? 2 : 1) > 102)
    return fail(c, E_INVALID, 0, "s_movrel%c indexes s%llu (operand %d + M0 %u): only s0..s101 can be indexed",
                reld ? 'd' : 's', (unsigned long long)at, base, w->s[124]);
  uint32_t a = 0, b;
  uint64_t A = 0, B;
  if (reld) {
    if (wide ? S64(0) : S32(0)) return 1;
    return wide ? swrite64(c, w, (int)at, A) : swrite(c, w, (int)at, a);
  }
  if (wide ? sval64(c, w, in, (int)at, &A) : sval(c, w, in, (int)at, &a)) return 1;
  return wide ? swrite64(c, w, in->dst, A) : swrite(c, w, in->dst, a);
}

/* s_setpc_b64: PC = S0; s_swappc_b64: D = the next instruction's address, PC = S0; s_call_b64: D = that
 * address, PC += 4 + 4 * SIMM16. Addresses are device addresses (image_base + offset, as s_getpc_b64 gives). */
static int salu_jump(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t A = 0, ret = c->L->image_base + in->pc + in->size;
  if (in->op == OP_S_CALL_B64) {
    if (swrite64(c, w, in->dst, ret)) return 1;
    return jump(c, (int64_t)in->pc + 4 + 4 * (int64_t)(int16_t)in->imm);
  }
  if (sval64(c, w, in, in->src[0], &A)) return 1; /* read before D is written: they may overlap */
  if (in->op == OP_S_SWAPPC_B64 && swrite64(c, w, in->dst, ret)) return 1;
  if (A < c->L->image_base || A - c->L->image_base > (uint64_t)INT32_MAX)
    return fail(c, E_INVALID, A, "jump to %#llx, which is not an instruction of the kernel", (unsigned long long)A);
  return jump(c, (int64_t)(A - c->L->image_base));
}

/* The MODE register (docs/facts.md §13.2, §13.4): FP_ROUND [3:0] and FP_DENORM [7:4] are honoured by the VALU
 * ops isa.OPS marks (fp_mode_enter); DX10_CLAMP [8] and IEEE [9] must stay set and the exception enables
 * [20:12] clear (the core implements only that); GPR_IDX_EN (bit 27) follows s_set_gpr_idx_on/off. */
#define MODE_DEFAULT 0x3F0u
#define MODE_FLOAT_FIELDS 0xFFu
#define MODE_GPR_IDX_EN (1u << 27)
enum { HW_REG_MODE = 1, HW_REG_STATUS = 2, HW_REG_TRAPSTS = 3, HW_REG_HW_ID = 4, HW_REG_XCC_ID = 20 };

static const char *hwreg_name(int id) {
  switch (id) {
    case 5: return "HW_REG_GPR_ALLOC";
    case 6: return "HW_REG_LDS_ALLOC";
    case 7: return "HW_REG_IB_STS";
    case 15: return "HW_REG_SH_MEM_BASES";
    default: return "an unnamed register";
  }
}

/* The read-only registers the emulator can give plausible values (docs/facts.md §13.4): STATUS with SCC [0],
 * the user priority [4:3], EXECZ [9], VCCZ [10] and VALID [16]; TRAPSTS 0 (no exception is raised: none can be
 * enabled); HW_ID with the wave's slot [3:0] and SIMD [5:4] (waves dealt to SIMDs in turn), everything else 0;
 * XCC_ID 0. Returns 0 if the register is not one of them. */
static int hwreg_read(ctx_t *c, wave_t *w, int id, uint32_t *v) {
  int wi = (int)(w - c->waves);
  switch (id) {
    case HW_REG_MODE: *v = w->mode; return 1;
    case HW_REG_STATUS:
      *v = (uint32_t)(w->scc & 1) | (uint32_t)(w->prio & 3) << 3 | (uint32_t)(exec_of(w) == 0) << 9 |
           (uint32_t)(vcc_of(w) == 0) << 10 | 1u << 16;
      return 1;
    case HW_REG_TRAPSTS: case HW_REG_XCC_ID: *v = 0; return 1;
    case HW_REG_HW_ID: *v = (uint32_t)(wi / 4 & 15) | (uint32_t)(wi % 4) << 4; return 1;
    default: return 0;
  }
}

/* s_getreg_b32 / s_setreg_b32 / s_setreg_imm32_b32 on hwreg(id, offset, size) (SIMM16 [5:0], [10:6],
 * [15:11] = size - 1). MODE's float fields are writable; the other registers are read-only or refused. */
static int salu_hwreg(ctx_t *c, wave_t *w, const insn_t *in) {
  int id = in->imm & 63, off = (in->imm >> 6) & 31, size = ((in->imm >> 11) & 31) + 1;
  int get = in->op == OP_S_GETREG_B32;
  uint32_t mask = size >= 32 ? ~0u : (1u << size) - 1, v = in->literal, now;
  if (!hwreg_read(c, w, id, &now))
    return fail(c, E_UNIMPL, 0, "%s of hardware register %d (%s): the emulator models only MODE, STATUS, TRAPSTS, "
                "HW_ID and XCC_ID", get ? "s_getreg_b32" : "s_setreg", id, hwreg_name(id));
  if (get) return swrite(c, w, in->dst, (now >> off) & mask);
  if (id != HW_REG_MODE)
    return fail(c, E_UNIMPL, 0, "s_setreg of hardware register %d: the emulator treats it as read-only", id);
  if (in->op == OP_S_SETREG_B32 && sval(c, w, in, in->src[0], &v)) return 1;
  uint32_t field = mask << off, mode = (w->mode & ~field) | ((v << off) & field);
  if ((mode & ~(MODE_GPR_IDX_EN | MODE_FLOAT_FIELDS)) != (MODE_DEFAULT & ~MODE_FLOAT_FIELDS))
    return fail(c, E_UNIMPL, 0, "s_setreg would set MODE to %#x: beyond FP_ROUND and FP_DENORM the emulator "
                "implements only DX10_CLAMP and IEEE on and no exceptions enabled (%#x)",
                mode & ~MODE_GPR_IDX_EN, MODE_DEFAULT & ~MODE_FLOAT_FIELDS);
  w->mode = mode;
  return 0;
}

/* The host floating-point environment for one VALU op under a MODE other than the default (docs/facts.md
 * §13.4). fp32 and fp64 ops: MXCSR's rounding control and its DAZ (inputs) / FTZ (results) bits; fp16 ops: the
 * core's fp16 helpers (f16_mode). Returns 0 when the op honours nothing that differs from the default; else the
 * MXCSR to restore is in *saved. */
static int fp_mode_enter(const wave_t *w, int op, uint32_t *saved) {
  int fp = OPS[op].fpmode;
  if (!fp) return 0;
  int half = fp == FP_32 ? 0 : 2;
  uint32_t rnd = OPS[op].fpround ? (w->mode >> half) & 3 : 0, den = (w->mode >> (4 + half)) & 3;
  if (!rnd && den == 3) return 0;
  static const uint32_t RC[4] = {0x0000, 0x4000, 0x2000, 0x6000}; /* MODE order: nearest, up, down, zero */
  *saved = _mm_getcsr();
  if (fp == FP_16) { /* computed exactly in double, so only an exact zero's sign depends on the SSE rounding */
    f16_mode.round = (uint8_t)rnd;
    f16_mode.daz = !(den & 1);
    f16_mode.ftz = !(den & 2);
    __atomic_add_fetch(&f16_mode_users, 1, __ATOMIC_RELAXED);
    _mm_setcsr((*saved & ~0x6000u) | RC[rnd]);
    return 1;
  }
  _mm_setcsr((*saved & ~0xE040u) | RC[rnd] | (den & 1 ? 0 : 0x0040u) | (den & 2 ? 0 : 0x8000u));
  return 1;
}

static void fp_mode_leave(int op, uint32_t saved) {
  if (OPS[op].fpmode == FP_16) {
    memset(&f16_mode, 0, sizeof f16_mode);
    __atomic_sub_fetch(&f16_mode_users, 1, __ATOMIC_RELAXED);
  }
  _mm_setcsr(saved);
}

/* VGPR indexing (docs/facts.md §13.2): s_set_gpr_idx_on S0, SIMM4 sets MODE.GPR_IDX_EN, M0[7:0] = S0[7:0] and
 * M0[15:12] = SIMM4 (which VALU operands are indexed: src0, src1, src2, dst); _off clears GPR_IDX_EN, _mode sets
 * M0[15:12], _idx M0[7:0]. Other bits of M0 are kept. */
static int gpr_idx(ctx_t *c, wave_t *w, const insn_t *in) {
  uint32_t a = 0, b, m0 = w->s[124];
  switch (in->op) {
    case OP_S_SET_GPR_IDX_OFF: w->mode &= ~MODE_GPR_IDX_EN; return 0;
    case OP_S_SET_GPR_IDX_MODE: m0 = (m0 & ~0xF000u) | (uint32_t)(in->imm & 0xF) << 12; break;
    case OP_S_SET_GPR_IDX_ON:
      if (S32(0)) return 1;
      m0 = (m0 & ~0xF0FFu) | (a & 0xFF) | (uint32_t)(in->src[1] & 0xF) << 12; /* SIMM4 sits in the SSRC1 field */
      w->mode |= MODE_GPR_IDX_EN;
      break;
    default:
      if (S32(0)) return 1;
      m0 = (m0 & ~0xFFu) | (a & 0xFF);
  }
  return swrite(c, w, 124, m0);
}

/* With GPR_IDX_EN, a VALU instruction's VGPR operands that M0[15:12] selects are offset by M0[7:0]. */
static int gpr_indexed(ctx_t *c, wave_t *w, insn_t *x) {
  int tc = OP_TCLASS[x->op];
  if (tc != TC_VALU && tc != TC_TRANS && tc != TC_VALU64) return 0;
  uint32_t m0 = w->s[124], off = m0 & 0xFF;
  int16_t *slot[4] = {&x->src[0], &x->src[1], &x->src[2], &x->dst};
  for (int k = 0; k < 4; k++) {
    if (!(m0 >> (12 + k) & 1) || *slot[k] < 256 || *slot[k] >= 512) continue;
    if (*slot[k] + (int)off >= 512)
      return fail(c, E_INVALID, 0, "VGPR index mode: v%d + M0[7:0] (%u) is beyond v255", *slot[k] - 256, off);
    *slot[k] = (int16_t)(*slot[k] + (int)off);
  }
  return 0;
}
#undef S32
#undef S64

/* ---------------------------------------------------------------- program control (SOPP) */

static int invalid_op(ctx_t *c, wave_t *w, const insn_t *in) {
  return fail(c, E_UNIMPL, 0, "unknown or unimplemented instruction encoding");
}

static int sopp_nop(ctx_t *c, wave_t *w, const insn_t *in) { return 0; }

static int sopp_setprio(ctx_t *c, wave_t *w, const insn_t *in) {
  w->prio = in->imm & 3;
  return 0;
}

static int sopp_endpgm(ctx_t *c, wave_t *w, const insn_t *in) {
  q_retire(c, w, &w->vm, 0, 0);
  q_retire(c, w, &w->lgkm, 0, 1);
  w->status = W_DONE;
  c->next = w->pc; /* a finished wave stays at its s_endpgm */
  return 0;
}

static int sopp_barrier(ctx_t *c, wave_t *w, const insn_t *in) {
  w->status = W_BARRIER;
  return 0;
}

static int sopp_waitcnt(ctx_t *c, wave_t *w, const insn_t *in) {
  int imm = in->imm & 0xFFFF;
  int vm = (imm & 0xF) | ((imm >> 14) & 3) << 4, lgkm = (imm >> 8) & 0xF;
  q_retire(c, w, &w->vm, vm, 0);
  q_retire(c, w, &w->lgkm, lgkm, 1);
  return 0;
}

static int sopp_branch(ctx_t *c, wave_t *w, const insn_t *in) {
  int taken;
  switch (OPS[in->op].cond) {
    case BR_ALWAYS: taken = 1; break;
    case BR_SCC0: taken = w->scc == 0; break;
    case BR_SCC1: taken = w->scc != 0; break;
    case BR_VCCZ: taken = vcc_of(w) == 0; break;
    case BR_VCCNZ: taken = vcc_of(w) != 0; break;
    case BR_EXECZ: taken = exec_of(w) == 0; break;
    case BR_EXECNZ: taken = exec_of(w) != 0; break;
    /* the debugger status bits: no debugger is attached to an emulated wave, so they are 0 */
    case BR_CDBGSYS: case BR_CDBGUSER: case BR_CDBGSYS_OR_USER: case BR_CDBGSYS_AND_USER: taken = 0; break;
    default: return fail(c, E_UNIMPL, 0, "program-control instruction not implemented");
  }
  if (!taken) return 0;
  return jump(c, (int64_t)in->pc + 4 + 4 * (int64_t)(int16_t)in->imm);
}

/* s_sethalt: bit 0 set halts the wave until a debugger or the host resumes it, which never happens here */
static int sopp_sethalt(ctx_t *c, wave_t *w, const insn_t *in) {
  if (in->imm & 1)
    return fail(c, E_INVALID, 0, "s_sethalt %d halts the wave; nothing resumes a halted wave in the emulator",
                in->imm & 0xFFFF);
  return 0;
}

static int sopp_trap(ctx_t *c, wave_t *w, const insn_t *in) {
  return fail(c, E_INVALID, 0, "the kernel executed s_trap %d (a trap, e.g. from __builtin_trap or a failed "
              "assert); the emulator has no trap handler", in->imm & 0xFF);
}

/* Instructions the emulator refuses, with the reason numbered by the opcode table's .cond (isa.py). */
static int refused(ctx_t *c, wave_t *w, const insn_t *in) {
  static const char *why[] = {
    "",
    "fork/join divergence control through a stack in SGPRs: no compiler for gfx9+ emits it",
    "a return from a trap handler: the emulator runs no trap handler",
    "s_setkill: the kill bit belongs to pixel shaders",
    "s_sendmsg: messages to the SPI or host interrupts are not modelled",
    "s_setvskip: the vector-skip mode is not modelled",
    "v_exp_legacy_f32 / v_log_legacy_f32: the CDNA4 ISA guide does not describe them and no source we found gives"
    " their legacy special-value rules (docs/facts.md §6.11)",
  };
  int k = OPS[in->op].cond;
  return fail(c, E_UNIMPL, 0, "instruction not modelled by the emulator: %s",
              k > 0 && k < (int)(sizeof why / sizeof why[0]) ? why[k] : "(no reason recorded)");
}

/* ---------------------------------------------------------------- memory instructions */

static int lds_check_read(ctx_t *c, uint32_t addr, uint32_t n) {
  if (!c->lds_pend_n || !n) return 0; /* no direct-to-LDS load outstanding (or not strict): the common case */
  for (uint64_t d = addr >> 2; d <= ((uint64_t)addr + n - 1) >> 2 && d * 4 < c->lds_size; d++)
    if (c->lds_pend[d]) {
      uint32_t at = d * 4 > addr ? (uint32_t)d * 4 : addr;
      return fail(c, E_HAZARD, at, "LDS read at %#x of data whose direct-to-LDS load has not been delivered "
                  "(missing s_waitcnt vmcnt before s_barrier?)", at);
    }
  return 0;
}

static inline void lds_read_bytes(ctx_t *c, uint32_t addr, void *out, uint32_t n) {
  if (lds_in(c, addr, n)) memcpy(out, c->lds + addr, n);
  else memset(out, 0, n); /* out of range reads return 0 */
}

static inline void lds_write_bytes(ctx_t *c, uint32_t addr, const void *in, uint32_t n) {
  if (lds_in(c, addr, n)) memcpy(c->lds + addr, in, n); /* out of range writes are dropped */
}

/* ---------------------------------------------------------------- atomics (docs/facts.md §9) */

/* Read-modify-write operations. Each one is applied whole when its instruction issues, lane by lane in
 * ascending lane order, so it is atomic against every other access of the launch (waves run one at a time). */
enum { A_SWAP, A_CMPSWAP, A_ADD, A_SUB, A_RSUB, A_SMIN, A_UMIN, A_SMAX, A_UMAX, A_AND, A_OR, A_XOR, A_INC, A_DEC,
       A_MSKOR, A_CMPSWAP_F, A_ADD_F, A_MIN_F, A_MAX_F, A_PK_ADD_F16, A_PK_ADD_BF16, A_WRAP, A_CONDXCHG32 };

typedef struct {
  int aop, bytes; /* bytes: 4 or 8, the memory operand's width */
  int ret;        /* DS: the _rtn_ forms return the old value (VMEM: the SC0 bit says it) */
  int pair;       /* the op takes a second data operand: the compare value (cmpswap, cmpst) or mskor's OR bits */
} atomic_t;

static inline double ieee_min64(double a, double b) {
  if (a != a) return b != b ? a : b;
  if (b != b) return a;
  if (a == 0.0 && b == 0.0) return signbit(a) ? a : b;
  return a < b ? a : b;
}

static inline double ieee_max64(double a, double b) {
  if (a != a) return b != b ? a : b;
  if (b != b) return a;
  if (a == 0.0 && b == 0.0) return signbit(a) ? b : a;
  return a > b ? a : b;
}

static inline uint64_t u64d(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

/* The new memory value. x: the data operand; y: the second one (the value compared with, or mskor's OR bits). */
static uint64_t atomic_apply(int aop, int bytes, uint64_t old, uint64_t x, uint64_t y) {
  int wide = bytes == 8;
  uint64_t mask = wide ? ~0ull : 0xFFFFFFFFull;
  int64_t so = wide ? (int64_t)old : (int32_t)old, sx = wide ? (int64_t)x : (int32_t)x;
  switch (aop) {
    case A_SWAP: return x;
    case A_CMPSWAP: return old == y ? x : old;
    case A_ADD: return (old + x) & mask;
    case A_SUB: return (old - x) & mask;
    case A_RSUB: return (x - old) & mask;
    case A_SMIN: return sx < so ? x : old;
    case A_UMIN: return x < old ? x : old;
    case A_SMAX: return sx > so ? x : old;
    case A_UMAX: return x > old ? x : old;
    case A_AND: return old & x;
    case A_OR: return old | x;
    case A_XOR: return old ^ x;
    case A_INC: return old >= x ? 0 : old + 1;
    case A_DEC: return old == 0 || old > x ? x : old - 1;
    case A_MSKOR: return (old & ~x) | y;
    case A_WRAP: return (uint32_t)(old >= x ? old - x : old + y); /* docs/facts.md §9.6 */
    case A_CONDXCHG32: { /* each dword with bit 31 set in x is replaced by its bits 30:0 (docs/facts.md §9.6) */
      uint64_t r = old;
      for (int h = 0; h < 64; h += 32)
        if (x >> (h + 31) & 1) r = (r & ~(0xFFFFFFFFull << h)) | (x & (0x7FFFFFFFull << h));
      return r;
    }
    case A_CMPSWAP_F: /* compared as numbers: +0 equals -0, NaN equals nothing */
      return (wide ? f64(old) == f64(y) : f32((uint32_t)old) == f32((uint32_t)y)) ? x : old;
    case A_ADD_F: return wide ? u64d(f64(old) + f64(x)) : u32f(f32((uint32_t)old) + f32((uint32_t)x));
    case A_MIN_F:
      return wide ? u64d(ieee_min64(f64(old), f64(x))) : u32f(ieee_min(f32((uint32_t)old), f32((uint32_t)x)));
    case A_MAX_F:
      return wide ? u64d(ieee_max64(f64(old), f64(x))) : u32f(ieee_max(f32((uint32_t)old), f32((uint32_t)x)));
    case A_PK_ADD_F16: { /* each half rounded to nearest even; the fp32 sum of two halves rounds innocuously */
      uint32_t r = 0;
      for (int h = 0; h < 32; h += 16) {
        float s = (float)f16_of((uint16_t)(old >> h)) + (float)f16_of((uint16_t)(x >> h));
        r |= (uint32_t)f16_bits((_Float16)s) << h;
      }
      return r;
    }
    case A_PK_ADD_BF16: {
      uint32_t r = 0;
      for (int h = 0; h < 32; h += 16)
        r |= bf16_rne(f32((uint32_t)(old >> h & 0xFFFF) << 16) + f32((uint32_t)(x >> h & 0xFFFF) << 16)) << h;
      return r;
    }
    default: return old;
  }
}

/* The VMEM atomics (MUBUF, GLOBAL, FLAT share them); 0 if op is not one. */
static int vmem_atomic_of(const insn_t *in, atomic_t *a) {
  switch (in->op) {
#define VA(name, aop, b, pr)                                                                                  \
  case OP_BUFFER_ATOMIC_##name: case OP_GLOBAL_ATOMIC_##name: case OP_FLAT_ATOMIC_##name:                     \
    *a = (atomic_t){aop, b, (int)(in->flags >> F_SC0 & 1), pr}; return 1;
    VA(SWAP, A_SWAP, 4, 0) VA(CMPSWAP, A_CMPSWAP, 4, 1) VA(ADD, A_ADD, 4, 0) VA(SUB, A_SUB, 4, 0)
    VA(SMIN, A_SMIN, 4, 0) VA(UMIN, A_UMIN, 4, 0) VA(SMAX, A_SMAX, 4, 0) VA(UMAX, A_UMAX, 4, 0)
    VA(AND, A_AND, 4, 0) VA(OR, A_OR, 4, 0) VA(XOR, A_XOR, 4, 0) VA(INC, A_INC, 4, 0) VA(DEC, A_DEC, 4, 0)
    VA(ADD_F32, A_ADD_F, 4, 0) VA(PK_ADD_F16, A_PK_ADD_F16, 4, 0) VA(PK_ADD_BF16, A_PK_ADD_BF16, 4, 0)
    VA(ADD_F64, A_ADD_F, 8, 0) VA(MIN_F64, A_MIN_F, 8, 0) VA(MAX_F64, A_MAX_F, 8, 0)
    VA(SWAP_X2, A_SWAP, 8, 0) VA(CMPSWAP_X2, A_CMPSWAP, 8, 1) VA(ADD_X2, A_ADD, 8, 0) VA(SUB_X2, A_SUB, 8, 0)
    VA(SMIN_X2, A_SMIN, 8, 0) VA(UMIN_X2, A_UMIN, 8, 0) VA(SMAX_X2, A_SMAX, 8, 0) VA(UMAX_X2, A_UMAX, 8, 0)
    VA(AND_X2, A_AND, 8, 0) VA(OR_X2, A_OR, 8, 0) VA(XOR_X2, A_XOR, 8, 0) VA(INC_X2, A_INC, 8, 0)
    VA(DEC_X2, A_DEC, 8, 0)
#undef VA
    default: return 0;
  }
}

/* The DS atomics; 0 if op is not one. wrxchg2 is handled by ds_wrxchg2. */
static int ds_atomic_of(int op, atomic_t *a) {
  switch (op) {
#define DA(name, aop, b, r, pr) case OP_DS_##name: *a = (atomic_t){aop, b, r, pr}; return 1;
#define DA2(name, aop, pr) DA(name##_B32, aop, 4, 0, pr) DA(name##_RTN_B32, aop, 4, 1, pr) \
                           DA(name##_B64, aop, 8, 0, pr) DA(name##_RTN_B64, aop, 8, 1, pr)
#define DAU(name, aop) DA(name##_U32, aop, 4, 0, 0) DA(name##_RTN_U32, aop, 4, 1, 0) \
                       DA(name##_U64, aop, 8, 0, 0) DA(name##_RTN_U64, aop, 8, 1, 0)
#define DAI(name, aop) DA(name##_I32, aop, 4, 0, 0) DA(name##_RTN_I32, aop, 4, 1, 0) \
                       DA(name##_I64, aop, 8, 0, 0) DA(name##_RTN_I64, aop, 8, 1, 0)
#define DAF(name, aop) DA(name##_F32, aop, 4, 0, 0) DA(name##_RTN_F32, aop, 4, 1, 0) \
                       DA(name##_F64, aop, 8, 0, 0) DA(name##_RTN_F64, aop, 8, 1, 0)
    DAU(ADD, A_ADD) DAU(SUB, A_SUB) DAU(RSUB, A_RSUB) DAU(INC, A_INC) DAU(DEC, A_DEC) DAU(MIN, A_UMIN)
    DAU(MAX, A_UMAX) DAI(MIN, A_SMIN) DAI(MAX, A_SMAX) DA2(AND, A_AND, 0) DA2(OR, A_OR, 0) DA2(XOR, A_XOR, 0)
    DA2(MSKOR, A_MSKOR, 1) DA2(CMPST, A_CMPSWAP, 1) DAF(MIN, A_MIN_F) DAF(MAX, A_MAX_F)
    DA(CMPST_F32, A_CMPSWAP_F, 4, 0, 1) DA(CMPST_RTN_F32, A_CMPSWAP_F, 4, 1, 1)
    DA(CMPST_F64, A_CMPSWAP_F, 8, 0, 1) DA(CMPST_RTN_F64, A_CMPSWAP_F, 8, 1, 1)
    DA(WRXCHG_RTN_B32, A_SWAP, 4, 1, 0) DA(WRXCHG_RTN_B64, A_SWAP, 8, 1, 0)
    DA(ADD_F32, A_ADD_F, 4, 0, 0) DA(ADD_RTN_F32, A_ADD_F, 4, 1, 0) DA(ADD_F64, A_ADD_F, 8, 0, 0)
    DA(ADD_RTN_F64, A_ADD_F, 8, 1, 0) DA(PK_ADD_F16, A_PK_ADD_F16, 4, 0, 0) DA(PK_ADD_RTN_F16, A_PK_ADD_F16, 4, 1, 0)
    DA(PK_ADD_BF16, A_PK_ADD_BF16, 4, 0, 0) DA(PK_ADD_RTN_BF16, A_PK_ADD_BF16, 4, 1, 0)
    DA(WRAP_RTN_B32, A_WRAP, 4, 1, 1) DA(CONDXCHG32_RTN_B64, A_CONDXCHG32, 8, 1, 0)
#undef DA
#undef DA2
#undef DAU
#undef DAI
#undef DAF
    default: return 0;
  }
}

static inline uint64_t row64(wave_t *w, int reg, int wide, int l) {
  return vrow(w, reg)[l] | (wide ? (uint64_t)vrow(w, reg + 1)[l] << 32 : 0);
}

/* One lane's read-modify-write of the `bytes` at p (host memory of the address); returns the old value. */
static inline uint64_t rmw(uint8_t *p, const atomic_t *a, uint64_t x, uint64_t y) {
  uint64_t old = 0;
  memcpy(&old, p, (size_t)a->bytes);
  uint64_t val = atomic_apply(a->aop, a->bytes, old, x, y);
  memcpy(p, &val, (size_t)a->bytes);
  return old;
}

/* The data operands of every active lane, read before the destination (which may be the same registers, as
 * MUBUF's VDATA is) is poisoned. For a compare-and-swap, x is the new value and y the one compared with. */
static int atomic_operands(ctx_t *c, wave_t *w, const atomic_t *a, int reg_x, int reg_y, uint64_t *x, uint64_t *y) {
  int wide = a->bytes == 8, n = wide ? 2 : 1;
  if (check_v(c, w, reg_x - 256, n, 0) || (a->pair && check_v(c, w, reg_y - 256, n, 0))) return 1;
  for (int l = 0; l < LANES; l++) {
    x[l] = row64(w, reg_x, wide, l);
    y[l] = a->pair ? row64(w, reg_y, wide, l) : 0;
  }
  return 0;
}

/* Where the old values go: a pending load into `dst` when the atomic returns, else a store entry. */
static pending_t *atomic_pending(ctx_t *c, wave_t *w, queue_t *q, int lgkm, const atomic_t *a, int dst, uint64_t exec) {
  if (a->ret) return issue_vload(c, w, q, lgkm, dst, a->bytes / 4, exec);
  pending_t *p = issue(c, w, q, lgkm);
  p->kind = lgkm ? PK_LDS : PK_STORE;
  p->lgkm_lds = (uint8_t)lgkm;
  if (lgkm) p->seq = ++w->lds_seq;
  return p;
}

static inline void atomic_return(pending_t *p, const atomic_t *a, int l, uint64_t old) {
  if (!a->ret) return;
  p->data[l] = (uint32_t)old;
  if (a->bytes == 8) p->data[LANES + l] = (uint32_t)(old >> 32);
}

/* A VMEM atomic over per-lane addresses (ok: per-lane in-range bits of a buffer access, NULL = all in range;
 * flat = 2: the LDS aperture applies). Out-of-range lanes are dropped and return 0 (docs/facts.md §3.3). */
static int vmem_atomic(ctx_t *c, wave_t *w, const insn_t *in, const atomic_t *a, const uint64_t *lane_addr,
                       const uint32_t *ok, int flat) {
  uint64_t exec = exec_of(w), x[LANES], y[LANES];
  int n = a->bytes / 4;
  /* FLAT/GLOBAL: DATA holds the operand(s), VDST the result; MUBUF: VDATA holds both */
  int data = in->op >= OP_GLOBAL_LOAD_UBYTE ? in->src[1] : in->dst;
  if (atomic_operands(c, w, a, data, data + n, x, y)) return 1;
  if (a->ret && vdst_check(c, w, in->dst, n)) return 1;
  if (in->flags & (1u << F_LDS)) return fail(c, E_INVALID, 0, "an atomic has no LDS form");
  pending_t *p = atomic_pending(c, w, &w->vm, 0, a, in->dst, exec);
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint64_t at = lane_addr[l], old = 0;
    if (ok && ok[l] != (1u << n) - 1) {
      atomic_return(p, a, l, 0);
      continue;
    }
    if (at & (uint64_t)(a->bytes - 1))
      return fail(c, E_MEMORY, at, "misaligned %d-byte atomic at %#llx", a->bytes, (unsigned long long)at);
    if (flat == 2 && at >= c->L->shared_base && at < c->L->shared_base + (1ull << 32)) {
      uint32_t la = (uint32_t)(at - c->L->shared_base);
      if (lds_check_read(c, la, (uint32_t)a->bytes)) return 1;
      if (lds_in(c, la, (uint32_t)a->bytes)) old = rmw(c->lds + la, a, x[l], y[l]);
    } else {
      uint8_t *h = translate(c, at, (uint32_t)a->bytes);
      if (!h) return fail(c, E_MEMORY, at, "atomic on %d bytes at %#llx is outside every device allocation",
                          a->bytes, (unsigned long long)at);
      old = rmw(h, a, x[l], y[l]);
    }
    atomic_return(p, a, l, old);
  }
  if (c->tm) tm_vmem(c, w, p, lane_addr, a->bytes, exec, !a->ret, 0);
  return 0;
}

/* An LDS atomic: DATA0 is the operand (the compare value of cmpst, the mask of mskor, wrap's subtrahend), DATA1
 * the second one (cmpst's new value, mskor's OR bits, wrap's addend). Out-of-range lanes are dropped and return 0. */
static int ds_atomic(ctx_t *c, wave_t *w, const insn_t *in, const atomic_t *a, const uint32_t *addr) {
  uint64_t exec = exec_of(w), d0[LANES], d1[LANES];
  if (a->pair) { /* cmpst: x = DATA1, y = DATA0; mskor and wrap: x = DATA0, y = DATA1 */
    int first = a->aop == A_MSKOR || a->aop == A_WRAP;
    if (atomic_operands(c, w, a, first ? in->src[1] : in->src[2], first ? in->src[2] : in->src[1], d0, d1)) return 1;
  } else if (atomic_operands(c, w, a, in->src[1], in->src[1], d0, d1)) return 1;
  if (a->ret && vdst_check(c, w, in->dst, a->bytes / 4)) return 1;
  pending_t *p = atomic_pending(c, w, &w->lgkm, 1, a, in->dst, exec);
  uint32_t eff[LANES];
  for (int l = 0; l < LANES; l++) eff[l] = addr[l] + (uint32_t)in->imm;
  if (c->lds_own && lds_access_lanes(c, eff, exec, (uint32_t)a->bytes, LA_ATOMIC, p->seq, w->pc)) return 1;
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint32_t at = eff[l];
    uint64_t old = 0;
    if (at & (uint32_t)(a->bytes - 1)) return fail(c, E_MEMORY, at, "misaligned LDS atomic at %#x", at);
    if (lds_check_read(c, at, (uint32_t)a->bytes)) return 1;
    if (lds_in(c, at, (uint32_t)a->bytes)) old = rmw(c->lds + at, a, d0[l], d1[l]);
    atomic_return(p, a, l, old);
  }
  if (c->tm) tm_lds(c, w, p, eff, NULL, a->bytes, exec, 1);
  return 0;
}

/* ds_wrxchg2{,st64}_rtn_b32/b64: exchange DATA0 with the element at offset0 and DATA1 with the one at offset1
 * (in elements, or 64-element strides); both old elements return, offset0's first. */
static int ds_wrxchg2(ctx_t *c, wave_t *w, const insn_t *in, const uint32_t *addr) {
  int op = in->op, bytes = op == OP_DS_WRXCHG2_RTN_B64 || op == OP_DS_WRXCHG2ST64_RTN_B64 ? 8 : 4;
  int st64 = op == OP_DS_WRXCHG2ST64_RTN_B32 || op == OP_DS_WRXCHG2ST64_RTN_B64, n = bytes / 4;
  uint32_t stride = (uint32_t)bytes * (st64 ? 64 : 1);
  atomic_t a = {A_SWAP, bytes, 1, 0};
  uint64_t exec = exec_of(w), d0[LANES], d1[LANES], unused[LANES];
  if (atomic_operands(c, w, &a, in->src[1], in->src[1], d0, unused) ||
      atomic_operands(c, w, &a, in->src[2], in->src[2], d1, unused)) return 1;
  if (vdst_check(c, w, in->dst, 2 * n)) return 1;
  pending_t *p = issue_vload(c, w, &w->lgkm, 1, in->dst, 2 * n, exec);
  uint32_t eff0[LANES], eff1[LANES];
  for (int l = 0; l < LANES; l++) {
    eff0[l] = addr[l] + (uint32_t)in->imm * stride;
    eff1[l] = addr[l] + (uint32_t)in->imm2 * stride;
  }
  if (c->lds_own && (lds_access_lanes(c, eff0, exec, (uint32_t)bytes, LA_ATOMIC, p->seq, w->pc) ||
                     lds_access_lanes(c, eff1, exec, (uint32_t)bytes, LA_ATOMIC, p->seq, w->pc)))
    return 1;
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    const uint32_t at[2] = {eff0[l], eff1[l]};
    const uint64_t val[2] = {d0[l], d1[l]};
    for (int k = 0; k < 2; k++) {
      uint64_t old = 0;
      if (at[k] & (uint32_t)(bytes - 1)) return fail(c, E_MEMORY, at[k], "misaligned LDS atomic at %#x", at[k]);
      if (lds_check_read(c, at[k], (uint32_t)bytes)) return 1;
      if (lds_in(c, at[k], (uint32_t)bytes)) old = rmw(c->lds + at[k], &a, val[k], 0);
      p->data[(k * n) * LANES + l] = (uint32_t)old;
      if (n == 2) p->data[(k * n + 1) * LANES + l] = (uint32_t)(old >> 32);
    }
  }
  if (c->tm) tm_lds(c, w, p, eff0, eff1, bytes, exec, 1);
  return 0;
}

/* ds_permute_b32, ds_bpermute_b32, ds_swizzle_b32 (docs/facts.md §9.4): lanes exchange a VGPR through the LDS
 * unit without touching LDS; a source lane outside EXEC gives 0. */
static int ds_lanes(ctx_t *c, wave_t *w, const insn_t *in, const uint32_t *addr) {
  uint64_t exec = exec_of(w);
  int swz = in->op == OP_DS_SWIZZLE_B32, data = swz ? in->src[0] : in->src[1];
  uint32_t off = (uint32_t)in->imm & 0xFFFF, out[LANES] = {0}, eff[LANES];
  if (check_v(c, w, data - 256, 1, 0)) return 1;
  const uint32_t *d = vrow(w, data);
  if (swz && off >= 0xC000)
    return fail(c, E_UNIMPL, 0, "ds_swizzle_b32 offset %#x: the rotate and FFT modes are not implemented", off);
  for (int l = 0; l < LANES; l++) {
    eff[l] = 4u * (uint32_t)l;
    int src;
    if (in->op == OP_DS_PERMUTE_B32) { /* forward: lane l writes lane addr / 4; the highest lane wins */
      if (exec >> l & 1) out[((addr[l] + off) >> 2) & 63] = d[l];
      continue;
    }
    if (in->op == OP_DS_BPERMUTE_B32) src = (int)(((addr[l] + off) >> 2) & 63);
    else if (off & 0x8000) src = (l & ~3) | (int)((off >> (2 * (l & 3))) & 3); /* quad permute */
    else src = (l & 0x20) | (int)((((uint32_t)l & 0x1F & off) | (off >> 5 & 0x1F)) ^ (off >> 10 & 0x1F));
    out[l] = exec >> src & 1 ? d[src] : 0;
  }
  if (vdst_check(c, w, in->dst, 1)) return 1;
  pending_t *p = issue_vload(c, w, &w->lgkm, 1, in->dst, 1, exec);
  memcpy(p->data, out, sizeof out);
  if (c->tm) tm_lds(c, w, p, eff, NULL, 4, exec, 0);
  return 0;
}

/* ds_read_addtid_b32 / ds_write_addtid_b32: lane l's dword at M0[17:0] + offset + 4 l (docs/facts.md §9.6);
 * lanes past the allocation read 0 or are dropped. */
static int ds_addtid(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec = exec_of(w);
  int rd = in->op == OP_DS_READ_ADDTID_B32;
  uint32_t base = (w->s[124] & 0x3FFFF) + (uint32_t)in->imm, eff[LANES];
  for (int l = 0; l < LANES; l++) eff[l] = base + 4u * (uint32_t)l;
  if (base & 3) return fail(c, E_MEMORY, base, "misaligned LDS access at %#x", base);
  pending_t *p;
  if (rd) {
    if (vdst_check(c, w, in->dst, 1)) return 1;
    p = issue_vload(c, w, &w->lgkm, 1, in->dst, 1, exec);
    if (c->lds_own && lds_access_lanes(c, eff, exec, 4, LA_READ, p->seq, w->pc)) return 1;
    for (int l = 0; l < LANES; l++) {
      p->data[l] = 0;
      if (!(exec >> l & 1)) continue;
      if (lds_check_read(c, eff[l], 4)) return 1;
      lds_read_bytes(c, eff[l], &p->data[l], 4);
    }
  } else {
    if (check_v(c, w, in->src[1] - 256, 1, 0)) return 1;
    p = issue(c, w, &w->lgkm, 1);
    p->kind = PK_LDS;
    p->lgkm_lds = 1;
    p->seq = ++w->lds_seq;
    if (c->lds_own && lds_access_lanes(c, eff, exec, 4, LA_WRITE, p->seq, w->pc)) return 1;
    for (int l = 0; l < LANES; l++)
      if (exec >> l & 1) lds_write_bytes(c, eff[l], &vrow(w, in->src[1])[l], 4);
  }
  if (c->tm) tm_lds(c, w, p, eff, NULL, 4, exec, !rd);
  return 0;
}

/* ds_append / ds_consume: one wave-wide atomic on the dword at (M0[17:0] + offset) & ~3 (docs/facts.md §9.6):
 * it grows (shrinks) by the number of active lanes, and every active lane receives the value before. */
static int ds_counter(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec = exec_of(w);
  uint32_t at = ((w->s[124] & 0x3FFFF) + (uint32_t)in->imm) & ~3u, old = 0, eff[LANES];
  if (vdst_check(c, w, in->dst, 1)) return 1;
  if (lds_check_read(c, at, 4)) return 1;
  pending_t *p = issue_vload(c, w, &w->lgkm, 1, in->dst, 1, exec);
  for (int l = 0; l < LANES; l++) eff[l] = at;
  /* one read-modify-write of the dword: an atomic for the race tracker (docs/facts.md §11.4) */
  if (c->lds_own && exec && lds_access_lanes(c, eff, exec & -exec, 4, LA_ATOMIC, p->seq, w->pc)) return 1;
  if (lds_in(c, at, 4)) {
    uint32_t n = (uint32_t)__builtin_popcountll(exec), v;
    memcpy(&old, c->lds + at, 4);
    v = in->op == OP_DS_APPEND ? old + n : old - n;
    memcpy(c->lds + at, &v, 4);
  }
  for (int l = 0; l < LANES; l++) p->data[l] = old;
  if (c->tm) tm_lds(c, w, p, eff, NULL, 4, exec, 1);
  return 0;
}

/* The transposing reads ds_read_b64_tr_b16/b8/b4 and ds_read_b96_tr_b6 (docs/facts.md §1.11, §9.6): every lane
 * reads `bytes` bytes, E = 8 * bytes / bits elements; within each group of 16 lanes, taking the group's 16 E
 * elements in lane order (lane s's element p is number s E + p), lane q's result element e is number 16 e + q.
 * Result elements are packed from bit 0 up. EXEC must be all ones. */
static int ds_read_transposed(ctx_t *c, wave_t *w, const insn_t *in, const uint32_t *addr, int bytes, int bits) {
  uint64_t exec = exec_of(w);
  int E = 8 * bytes / bits, regs = bytes / 4, align = bytes == 8 ? 8 : 4;
  if (exec != ~0ull) return fail(c, E_INVALID, 0, "a transposing LDS read requires EXEC to be all ones");
  if (vdst_check(c, w, in->dst, regs)) return 1;
  uint32_t raw[LANES][3], eff[LANES];
  for (int l = 0; l < LANES; l++) {
    uint32_t a = eff[l] = addr[l] + (uint32_t)in->imm;
    if (a % (uint32_t)align) return fail(c, E_MEMORY, a, "transposing LDS read at %#x is not %d-byte aligned", a, align);
    if (lds_check_read(c, a, (uint32_t)bytes)) return 1;
  }
  pending_t *p = issue_vload(c, w, &w->lgkm, 1, in->dst, regs, exec);
  if (c->lds_own && lds_access_lanes(c, eff, exec, (uint32_t)bytes, LA_READ, p->seq, w->pc)) return 1;
  for (int l = 0; l < LANES; l++) {
    raw[l][2] = 0;
    lds_read_bytes(c, eff[l], raw[l], (uint32_t)bytes);
  }
  uint32_t mask = (1u << bits) - 1;
  for (int l = 0; l < LANES; l++) {
    uint32_t out[3] = {0, 0, 0};
    for (int e = 0; e < E; e++) {
      int n = 16 * e + l % 16, s = 16 * (l / 16) + n / E, b = bits * (n % E), o = bits * e; /* source lane, bits */
      uint64_t two = raw[s][b / 32] | (b / 32 + 1 < 3 ? (uint64_t)raw[s][b / 32 + 1] << 32 : 0);
      uint64_t v = (two >> b % 32) & mask;
      out[o / 32] |= (uint32_t)(v << o % 32);
      if (o % 32 + bits > 32) out[o / 32 + 1] |= (uint32_t)(v >> (32 - o % 32));
    }
    for (int r = 0; r < regs; r++) p->data[r * LANES + l] = out[r];
  }
  if (c->tm) tm_lds(c, w, p, eff, NULL, bytes, exec, 0);
  return 0;
}

static int ds(ctx_t *c, wave_t *w, const insn_t *in) {
  uint64_t exec = exec_of(w);
  int op = in->op;
  if (in->flags & (1u << F_GDS)) return fail(c, E_UNIMPL, 0, "GDS is not modelled");
  if (op == OP_DS_NOP) return 0;
  if (op == OP_DS_READ_ADDTID_B32 || op == OP_DS_WRITE_ADDTID_B32) return ds_addtid(c, w, in);
  if (op == OP_DS_APPEND || op == OP_DS_CONSUME) return ds_counter(c, w, in);
  if (check_v(c, w, in->src[0] - 256, 1, 0)) return 1;
  uint32_t addr[LANES]; /* copied: the destination may be the address register, and it is poisoned at issue */
  memcpy(addr, vrow(w, in->src[0]), sizeof addr);
  atomic_t at;
  if (ds_atomic_of(op, &at)) return ds_atomic(c, w, in, &at, addr);
  if (op == OP_DS_WRXCHG2_RTN_B32 || op == OP_DS_WRXCHG2ST64_RTN_B32 || op == OP_DS_WRXCHG2_RTN_B64 ||
      op == OP_DS_WRXCHG2ST64_RTN_B64)
    return ds_wrxchg2(c, w, in, addr);
  if (op == OP_DS_PERMUTE_B32 || op == OP_DS_BPERMUTE_B32 || op == OP_DS_SWIZZLE_B32) return ds_lanes(c, w, in, addr);
  int is_read = 0, bytes = 4, two = 0, st64 = 0, d16 = 0, hi = 0, sext = 0;
  switch (op) {
    case OP_DS_READ_B32: is_read = 1; break;
    case OP_DS_READ_B64: is_read = 1; bytes = 8; break;
    case OP_DS_READ_B96: is_read = 1; bytes = 12; break;
    case OP_DS_READ_B128: is_read = 1; bytes = 16; break;
    case OP_DS_READ2_B32: is_read = 1; two = 1; break;
    case OP_DS_READ2ST64_B32: is_read = 1; two = 1; st64 = 1; break;
    case OP_DS_READ2_B64: is_read = 1; two = 1; bytes = 8; break;
    case OP_DS_READ2ST64_B64: is_read = 1; two = 1; st64 = 1; bytes = 8; break;
    case OP_DS_READ_U8: is_read = 1; bytes = 1; break;
    case OP_DS_READ_I8: is_read = 1; bytes = 1; sext = 1; break;
    case OP_DS_READ_U16: is_read = 1; bytes = 2; break;
    case OP_DS_READ_I16: is_read = 1; bytes = 2; sext = 1; break;
    case OP_DS_READ_U8_D16: is_read = 1; bytes = 1; d16 = 1; break;
    case OP_DS_READ_U8_D16_HI: is_read = 1; bytes = 1; d16 = 1; hi = 1; break;
    case OP_DS_READ_I8_D16: is_read = 1; bytes = 1; d16 = 1; sext = 1; break;
    case OP_DS_READ_I8_D16_HI: is_read = 1; bytes = 1; d16 = 1; hi = 1; sext = 1; break;
    case OP_DS_READ_U16_D16: is_read = 1; bytes = 2; d16 = 1; break;
    case OP_DS_READ_U16_D16_HI: is_read = 1; bytes = 2; d16 = 1; hi = 1; break;
    case OP_DS_READ_B64_TR_B16: case OP_DS_READ_B64_TR_B8: case OP_DS_READ_B64_TR_B4:
      return ds_read_transposed(c, w, in, addr, 8, op == OP_DS_READ_B64_TR_B16 ? 16 : op == OP_DS_READ_B64_TR_B8 ? 8 : 4);
    case OP_DS_READ_B96_TR_B6: return ds_read_transposed(c, w, in, addr, 12, 6);
    case OP_DS_WRITE_B32: break;
    case OP_DS_WRITE_B64: bytes = 8; break;
    case OP_DS_WRITE_B96: bytes = 12; break;
    case OP_DS_WRITE_B128: bytes = 16; break;
    case OP_DS_WRITE2_B32: two = 1; break;
    case OP_DS_WRITE2ST64_B32: two = 1; st64 = 1; break;
    case OP_DS_WRITE2_B64: two = 1; bytes = 8; break;
    case OP_DS_WRITE2ST64_B64: two = 1; st64 = 1; bytes = 8; break;
    case OP_DS_WRITE_B8: bytes = 1; break;
    case OP_DS_WRITE_B16: bytes = 2; break;
    case OP_DS_WRITE_B8_D16_HI: bytes = 1; hi = 1; break;
    case OP_DS_WRITE_B16_D16_HI: bytes = 2; hi = 1; break;
    default: return fail(c, E_UNIMPL, 0, "LDS instruction not implemented by the execution core");
  }
  uint32_t stride = (uint32_t)bytes * (st64 ? 64 : 1);
  uint32_t eff0[LANES], eff1[LANES]; /* each lane's byte address(es): the bank model's, the race tracker's */
  if (c->tm || c->lds_own)
    for (int l = 0; l < LANES; l++) {
      eff0[l] = addr[l] + (uint32_t)in->imm * (two ? stride : 1);
      if (two) eff1[l] = addr[l] + (uint32_t)in->imm2 * stride;
    }
  if (is_read) {
    int words = two ? 2 * (bytes / 4) : (bytes + 3) / 4;
    if (vdst_check(c, w, in->dst, d16 ? 1 : words)) return 1;
    /* d16 loads merge into the old register value, read at issue */
    uint32_t old[LANES];
    if (d16) memcpy(old, vrow(w, in->dst), sizeof old);
    pending_t *p = issue_vload(c, w, &w->lgkm, 1, in->dst, d16 ? 1 : words, exec);
    if (c->lds_own && (lds_access_lanes(c, eff0, exec, (uint32_t)bytes, LA_READ, p->seq, w->pc) ||
                       (two && lds_access_lanes(c, eff1, exec, (uint32_t)bytes, LA_READ, p->seq, w->pc))))
      return 1;
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1)) continue;
      uint32_t buf[4] = {0, 0, 0, 0};
      if (two) {
        uint32_t a0 = addr[l] + (uint32_t)in->imm * stride, a1 = addr[l] + (uint32_t)in->imm2 * stride;
        if ((a0 | a1) & (uint32_t)(bytes - 1) & 3)
          return fail(c, E_MEMORY, a0, "misaligned LDS access at %#x", a0);
        if (lds_check_read(c, a0, bytes) || lds_check_read(c, a1, bytes)) return 1;
        lds_read_bytes(c, a0, buf, bytes);
        lds_read_bytes(c, a1, (uint8_t *)buf + bytes, bytes);
      } else {
        uint32_t a = addr[l] + (uint32_t)in->imm;
        if (bytes >= 4 && (a & 3)) return fail(c, E_MEMORY, a, "misaligned LDS access at %#x", a);
        if (lds_check_read(c, a, bytes)) return 1;
        lds_read_bytes(c, a, buf, bytes);
        if (bytes == 1) buf[0] = sext ? (uint32_t)(int32_t)(int8_t)buf[0] : buf[0] & 0xFF;
        if (bytes == 2) buf[0] = sext ? (uint32_t)(int32_t)(int16_t)buf[0] : buf[0] & 0xFFFF;
        if (d16) buf[0] = hi ? (old[l] & 0xFFFFu) | (buf[0] << 16) : (old[l] & 0xFFFF0000u) | (buf[0] & 0xFFFFu);
      }
      for (int r = 0; r < (d16 ? 1 : words); r++) p->data[r * LANES + l] = buf[r];
    }
    if (c->tm) tm_lds(c, w, p, eff0, two ? eff1 : NULL, bytes, exec, 0);
    return 0;
  }
  /* writes: data from src1 (and src2 for write2) */
  int dregs = (bytes + 3) / 4;
  if (check_v(c, w, in->src[1] - 256, dregs, 0)) return 1;
  if (two && check_v(c, w, in->src[2] - 256, dregs, 0)) return 1;
  pending_t *p = issue(c, w, &w->lgkm, 1);
  p->kind = PK_LDS;
  p->lgkm_lds = 1;
  p->seq = ++w->lds_seq;
  if (c->lds_own && (lds_access_lanes(c, eff0, exec, (uint32_t)bytes, LA_WRITE, p->seq, w->pc) ||
                     (two && lds_access_lanes(c, eff1, exec, (uint32_t)bytes, LA_WRITE, p->seq, w->pc))))
    return 1;
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint32_t buf[4], buf2[4];
    for (int r = 0; r < dregs; r++) buf[r] = vrow(w, in->src[1] + r)[l];
    if (hi) buf[0] >>= 16;
    if (two) {
      for (int r = 0; r < dregs; r++) buf2[r] = vrow(w, in->src[2] + r)[l];
      uint32_t a0 = addr[l] + (uint32_t)in->imm * stride, a1 = addr[l] + (uint32_t)in->imm2 * stride;
      if ((a0 | a1) & 3) return fail(c, E_MEMORY, a0, "misaligned LDS access at %#x", a0);
      lds_write_bytes(c, a0, buf, bytes);
      lds_write_bytes(c, a1, buf2, bytes);
    } else {
      uint32_t a = addr[l] + (uint32_t)in->imm;
      if (bytes >= 4 && (a & 3)) return fail(c, E_MEMORY, a, "misaligned LDS access at %#x", a);
      if (bytes == 2 && (a & 1)) return fail(c, E_MEMORY, a, "misaligned LDS access at %#x", a);
      lds_write_bytes(c, a, buf, bytes);
    }
  }
  if (c->tm) tm_lds(c, w, p, eff0, two ? eff1 : NULL, bytes, exec, 1);
  return 0;
}

/* Global/flat/buffer data movement shared by both encodings. kind: bytes per lane and how to place them. */
typedef struct {
  int load, bytes, dwords, sext, d16, hi, lds;
} memop_t;

static int memop_of(int op, memop_t *m) {
  memset(m, 0, sizeof *m);
  switch (op) {
#define L(name, b, dw, sx, d, h, ld) case name: *m = (memop_t){1, b, dw, sx, d, h, ld}; return 1;
#define S(name, b, dw, h) case name: *m = (memop_t){0, b, dw, 0, 0, h, 0}; return 1;
    L(OP_BUFFER_LOAD_UBYTE, 1, 1, 0, 0, 0, 0) L(OP_BUFFER_LOAD_SBYTE, 1, 1, 1, 0, 0, 0)
    L(OP_BUFFER_LOAD_USHORT, 2, 1, 0, 0, 0, 0) L(OP_BUFFER_LOAD_SSHORT, 2, 1, 1, 0, 0, 0)
    L(OP_BUFFER_LOAD_DWORD, 4, 1, 0, 0, 0, 0) L(OP_BUFFER_LOAD_DWORDX2, 8, 2, 0, 0, 0, 0)
    L(OP_BUFFER_LOAD_DWORDX3, 12, 3, 0, 0, 0, 0) L(OP_BUFFER_LOAD_DWORDX4, 16, 4, 0, 0, 0, 0)
    L(OP_BUFFER_LOAD_SHORT_D16, 2, 1, 0, 1, 0, 0) L(OP_BUFFER_LOAD_SHORT_D16_HI, 2, 1, 0, 1, 1, 0)
    L(OP_BUFFER_LOAD_UBYTE_D16, 1, 1, 0, 1, 0, 0) L(OP_BUFFER_LOAD_UBYTE_D16_HI, 1, 1, 0, 1, 1, 0)
    L(OP_BUFFER_LOAD_SBYTE_D16, 1, 1, 1, 1, 0, 0) L(OP_BUFFER_LOAD_SBYTE_D16_HI, 1, 1, 1, 1, 1, 0)
    S(OP_BUFFER_STORE_BYTE_D16_HI, 1, 1, 1)
    S(OP_BUFFER_STORE_BYTE, 1, 1, 0) S(OP_BUFFER_STORE_SHORT, 2, 1, 0) S(OP_BUFFER_STORE_SHORT_D16_HI, 2, 1, 1)
    S(OP_BUFFER_STORE_DWORD, 4, 1, 0) S(OP_BUFFER_STORE_DWORDX2, 8, 2, 0) S(OP_BUFFER_STORE_DWORDX3, 12, 3, 0)
    S(OP_BUFFER_STORE_DWORDX4, 16, 4, 0)
    L(OP_GLOBAL_LOAD_UBYTE, 1, 1, 0, 0, 0, 0) L(OP_GLOBAL_LOAD_SBYTE, 1, 1, 1, 0, 0, 0)
    L(OP_GLOBAL_LOAD_USHORT, 2, 1, 0, 0, 0, 0) L(OP_GLOBAL_LOAD_SSHORT, 2, 1, 1, 0, 0, 0)
    L(OP_GLOBAL_LOAD_DWORD, 4, 1, 0, 0, 0, 0) L(OP_GLOBAL_LOAD_DWORDX2, 8, 2, 0, 0, 0, 0)
    L(OP_GLOBAL_LOAD_DWORDX3, 12, 3, 0, 0, 0, 0) L(OP_GLOBAL_LOAD_DWORDX4, 16, 4, 0, 0, 0, 0)
    L(OP_GLOBAL_LOAD_UBYTE_D16, 1, 1, 0, 1, 0, 0) L(OP_GLOBAL_LOAD_UBYTE_D16_HI, 1, 1, 0, 1, 1, 0)
    L(OP_GLOBAL_LOAD_SHORT_D16, 2, 1, 0, 1, 0, 0) L(OP_GLOBAL_LOAD_SHORT_D16_HI, 2, 1, 0, 1, 1, 0)
    L(OP_GLOBAL_LOAD_SBYTE_D16, 1, 1, 1, 1, 0, 0) L(OP_GLOBAL_LOAD_SBYTE_D16_HI, 1, 1, 1, 1, 1, 0)
    L(OP_GLOBAL_LOAD_LDS_SBYTE, 1, 1, 1, 0, 0, 1) L(OP_GLOBAL_LOAD_LDS_SSHORT, 2, 1, 1, 0, 0, 1)
    L(OP_GLOBAL_LOAD_LDS_UBYTE, 1, 1, 0, 0, 0, 1) L(OP_GLOBAL_LOAD_LDS_USHORT, 2, 1, 0, 0, 0, 1)
    L(OP_GLOBAL_LOAD_LDS_DWORD, 4, 1, 0, 0, 0, 1) L(OP_GLOBAL_LOAD_LDS_DWORDX3, 12, 3, 0, 0, 0, 1)
    L(OP_GLOBAL_LOAD_LDS_DWORDX4, 16, 4, 0, 0, 0, 1)
    S(OP_GLOBAL_STORE_BYTE, 1, 1, 0) S(OP_GLOBAL_STORE_BYTE_D16_HI, 1, 1, 1) S(OP_GLOBAL_STORE_SHORT, 2, 1, 0)
    S(OP_GLOBAL_STORE_SHORT_D16_HI, 2, 1, 1) S(OP_GLOBAL_STORE_DWORD, 4, 1, 0) S(OP_GLOBAL_STORE_DWORDX2, 8, 2, 0)
    S(OP_GLOBAL_STORE_DWORDX3, 12, 3, 0) S(OP_GLOBAL_STORE_DWORDX4, 16, 4, 0)
    L(OP_FLAT_LOAD_UBYTE, 1, 1, 0, 0, 0, 0) L(OP_FLAT_LOAD_SBYTE, 1, 1, 1, 0, 0, 0)
    L(OP_FLAT_LOAD_USHORT, 2, 1, 0, 0, 0, 0) L(OP_FLAT_LOAD_SSHORT, 2, 1, 1, 0, 0, 0)
    L(OP_FLAT_LOAD_DWORD, 4, 1, 0, 0, 0, 0) L(OP_FLAT_LOAD_DWORDX2, 8, 2, 0, 0, 0, 0)
    L(OP_FLAT_LOAD_DWORDX3, 12, 3, 0, 0, 0, 0) L(OP_FLAT_LOAD_DWORDX4, 16, 4, 0, 0, 0, 0)
    L(OP_FLAT_LOAD_UBYTE_D16, 1, 1, 0, 1, 0, 0) L(OP_FLAT_LOAD_UBYTE_D16_HI, 1, 1, 0, 1, 1, 0)
    L(OP_FLAT_LOAD_SHORT_D16, 2, 1, 0, 1, 0, 0) L(OP_FLAT_LOAD_SHORT_D16_HI, 2, 1, 0, 1, 1, 0)
    L(OP_FLAT_LOAD_SBYTE_D16, 1, 1, 1, 1, 0, 0) L(OP_FLAT_LOAD_SBYTE_D16_HI, 1, 1, 1, 1, 1, 0)
    S(OP_FLAT_STORE_BYTE, 1, 1, 0) S(OP_FLAT_STORE_BYTE_D16_HI, 1, 1, 1) S(OP_FLAT_STORE_SHORT, 2, 1, 0)
    S(OP_FLAT_STORE_SHORT_D16_HI, 2, 1, 1) S(OP_FLAT_STORE_DWORD, 4, 1, 0) S(OP_FLAT_STORE_DWORDX2, 8, 2, 0)
    S(OP_FLAT_STORE_DWORDX3, 12, 3, 0) S(OP_FLAT_STORE_DWORDX4, 16, 4, 0)
    L(OP_SCRATCH_LOAD_UBYTE, 1, 1, 0, 0, 0, 0) L(OP_SCRATCH_LOAD_SBYTE, 1, 1, 1, 0, 0, 0)
    L(OP_SCRATCH_LOAD_USHORT, 2, 1, 0, 0, 0, 0) L(OP_SCRATCH_LOAD_SSHORT, 2, 1, 1, 0, 0, 0)
    L(OP_SCRATCH_LOAD_DWORD, 4, 1, 0, 0, 0, 0) L(OP_SCRATCH_LOAD_DWORDX2, 8, 2, 0, 0, 0, 0)
    L(OP_SCRATCH_LOAD_DWORDX3, 12, 3, 0, 0, 0, 0) L(OP_SCRATCH_LOAD_DWORDX4, 16, 4, 0, 0, 0, 0)
    L(OP_SCRATCH_LOAD_UBYTE_D16, 1, 1, 0, 1, 0, 0) L(OP_SCRATCH_LOAD_UBYTE_D16_HI, 1, 1, 0, 1, 1, 0)
    L(OP_SCRATCH_LOAD_SHORT_D16, 2, 1, 0, 1, 0, 0) L(OP_SCRATCH_LOAD_SHORT_D16_HI, 2, 1, 0, 1, 1, 0)
    L(OP_SCRATCH_LOAD_SBYTE_D16, 1, 1, 1, 1, 0, 0) L(OP_SCRATCH_LOAD_SBYTE_D16_HI, 1, 1, 1, 1, 1, 0)
    L(OP_SCRATCH_LOAD_LDS_SBYTE, 1, 1, 1, 0, 0, 1) L(OP_SCRATCH_LOAD_LDS_SSHORT, 2, 1, 1, 0, 0, 1)
    L(OP_SCRATCH_LOAD_LDS_UBYTE, 1, 1, 0, 0, 0, 1) L(OP_SCRATCH_LOAD_LDS_USHORT, 2, 1, 0, 0, 0, 1)
    L(OP_SCRATCH_LOAD_LDS_DWORD, 4, 1, 0, 0, 0, 1)
    S(OP_SCRATCH_STORE_BYTE, 1, 1, 0) S(OP_SCRATCH_STORE_BYTE_D16_HI, 1, 1, 1) S(OP_SCRATCH_STORE_SHORT, 2, 1, 0)
    S(OP_SCRATCH_STORE_SHORT_D16_HI, 2, 1, 1) S(OP_SCRATCH_STORE_DWORD, 4, 1, 0)
    S(OP_SCRATCH_STORE_DWORDX2, 8, 2, 0) S(OP_SCRATCH_STORE_DWORDX3, 12, 3, 0)
    S(OP_SCRATCH_STORE_DWORDX4, 16, 4, 0)
#undef L
#undef S
    default: return 0;
  }
}

static inline uint32_t load_extend(const memop_t *m, uint32_t raw, uint32_t old) {
  if (m->bytes == 1) raw = m->sext ? (uint32_t)(int32_t)(int8_t)raw : raw & 0xFF;
  else if (m->bytes == 2) raw = m->sext ? (uint32_t)(int32_t)(int16_t)raw : raw & 0xFFFF;
  if (m->d16) raw = m->hi ? (old & 0xFFFFu) | (raw << 16) : (old & 0xFFFF0000u) | (raw & 0xFFFFu);
  return raw;
}

/* An LDS-DMA entry on the vm queue: `dwords` per lane into slots of `slot` bytes from M0 plus the immediate
   (docs/facts.md §3.5); the LDS bytes read as poison until the entry retires. */
static pending_t *lds_dma_issue(ctx_t *c, wave_t *w, const insn_t *in, uint64_t exec, int dwords, uint32_t slot) {
  pending_t *p = issue(c, w, &w->vm, 0);
  p->rec = w->pc;
  p->kind = PK_LDS_DMA;
  p->mask = exec;
  p->dwords = (uint8_t)dwords;
  p->slot = slot;
  p->lds_base = (w->s[124] & 0x3FFFF) + (uint32_t)in->imm;
  return p;
}

static inline void lds_dma_put(ctx_t *c, pending_t *p, int l, int k, uint32_t value) {
  p->data[l * 4 + k] = value;
  uint32_t at = p->lds_base + (uint32_t)l * p->slot + 4 * k;
  if (lds_in(c, at, 4)) {
    uint32_t poison = POISON;
    memcpy(c->lds + at, &poison, 4);
    if (c->lds_pend) /* (an unaligned M0 spreads the dword over two) */
      for (uint32_t d = at >> 2; d <= (at + 3) >> 2; d++)
        if (!c->lds_pend[d]++) c->lds_pend_n++;
  }
}

/* Per-lane address (valid[] says whether the lane accesses memory at all; OOB buffer lanes read 0). */
/* The lanes of `exec` whose access reaches memory: a buffer access wholly outside its range reads zeros or is
 * dropped by the address unit (docs/facts.md §3.3) and moves no data, so the timing model counts none for it. */
static uint64_t lanes_in_range(uint64_t exec, const uint32_t *dw_ok) {
  if (!dw_ok) return exec;
  uint64_t in = 0;
  for (int l = 0; l < LANES; l++)
    if ((exec >> l & 1) && dw_ok[l]) in |= 1ull << l;
  return in;
}

static int vmem(ctx_t *c, wave_t *w, const insn_t *in, const memop_t *m, const uint64_t *lane_addr,
                const uint32_t *dw_ok /* bitmask of in-range dwords per lane, or NULL = all */, int flat) {
  uint64_t exec = exec_of(w);
  if (m->load && m->lds) { /* direct-to-LDS (docs/facts.md §3.5): placed by M0 and lane, delivered at retire */
    if (c->L->strict && hz_m0_lds_dma(c, w)) return 1;
    pending_t *p = lds_dma_issue(c, w, in, exec, m->dwords, m->bytes > 4 ? 16 : 4);
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1)) continue;
      uint32_t buf[4] = {0, 0, 0, 0};
      for (int k = 0; k < m->dwords; k++) {
        if (dw_ok && !(dw_ok[l] >> k & 1)) continue;
        uint32_t nb = m->bytes < 4 ? (uint32_t)m->bytes : 4;
        if (gread(c, lane_addr[l] + 4 * k, &buf[k], nb)) return 1;
      }
      if (m->bytes < 4) buf[0] = load_extend(m, buf[0], 0);
      for (int k = 0; k < m->dwords; k++) lds_dma_put(c, p, l, k, buf[k]);
    }
    if (c->tm) tm_vmem(c, w, p, lane_addr, m->bytes, lanes_in_range(exec, dw_ok), 0, 1);
    return 0;
  }
  if (m->load) {
    if (vdst_check(c, w, in->dst, m->dwords)) return 1;
    uint32_t old[LANES];
    if (m->d16) memcpy(old, vrow(w, in->dst), sizeof old);
    pending_t *p = issue_vload(c, w, &w->vm, 0, in->dst, m->dwords, exec);
    if (flat) { /* FLAT counts in both counters; model the vector one */ }
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1)) continue;
      uint32_t buf[4] = {0, 0, 0, 0};
      uint64_t a = lane_addr[l];
      if (m->bytes >= 4 && (a & 3)) return fail(c, E_MEMORY, a, "misaligned %d-byte load at %#llx", m->bytes, (unsigned long long)a);
      if (flat == 2 && a >= c->L->shared_base && a < c->L->shared_base + (1ull << 32)) {
        uint32_t la = (uint32_t)(a - c->L->shared_base);
        if (lds_check_read(c, la, m->bytes)) return 1;
        lds_read_bytes(c, la, buf, m->bytes);
      } else if (!dw_ok) {
        if (gread(c, a, buf, m->bytes)) return 1;
      } else {
        for (int k = 0; k < m->dwords; k++)
          if (dw_ok[l] >> k & 1) {
            uint32_t nb = m->bytes < 4 ? (uint32_t)m->bytes : 4;
            if (gread(c, a + 4 * k, &buf[k], nb)) return 1;
          }
      }
      if (m->bytes < 4) buf[0] = load_extend(m, buf[0], m->d16 ? old[l] : 0);
      for (int k = 0; k < m->dwords; k++) p->data[k * LANES + l] = buf[k];
    }
    if (c->tm) tm_vmem(c, w, p, lane_addr, m->bytes, lanes_in_range(exec, dw_ok), 0, 0);
    return 0;
  }
  /* store: data register is in src1 for FLAT, dst (VDATA) for MUBUF */
  int data = in->op >= OP_GLOBAL_LOAD_UBYTE ? in->src[1] : in->dst;
  /* more than 8 bytes of data and (MUBUF) no SGPR offset: the data registers have a WAR rule (hazards.c) */
  c->role = m->dwords > 2 && (in->op >= OP_GLOBAL_LOAD_UBYTE || in->src[2] >= 128) ? ROLE_WIDE_STORE : ROLE_PLAIN;
  int bad = check_v(c, w, data - 256, m->dwords, 0);
  c->role = ROLE_PLAIN;
  if (bad) return 1;
  pending_t *p = issue(c, w, &w->vm, 0);
  p->kind = PK_STORE;
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint32_t buf[4];
    for (int k = 0; k < m->dwords; k++) buf[k] = vrow(w, data + k)[l];
    if (m->hi) buf[0] >>= 16;
    uint64_t a = lane_addr[l];
    if (m->bytes >= 4 && (a & 3)) return fail(c, E_MEMORY, a, "misaligned %d-byte store at %#llx", m->bytes, (unsigned long long)a);
    if (m->bytes == 2 && (a & 1)) return fail(c, E_MEMORY, a, "misaligned 2-byte store at %#llx", (unsigned long long)a);
    if (flat == 2 && a >= c->L->shared_base && a < c->L->shared_base + (1ull << 32)) {
      lds_write_bytes(c, (uint32_t)(a - c->L->shared_base), buf, m->bytes);
      continue;
    }
    if (!dw_ok) {
      if (gwrite(c, a, buf, m->bytes)) return 1;
    } else {
      for (int k = 0; k < m->dwords; k++)
        if (dw_ok[l] >> k & 1) {
          uint32_t nb = m->bytes < 4 ? (uint32_t)m->bytes : 4;
          if (gwrite(c, a + 4 * k, &buf[k], nb)) return 1;
        }
    }
  }
  if (c->tm) tm_vmem(c, w, p, lane_addr, m->bytes, lanes_in_range(exec, dw_ok), 1, 0);
  return 0;
}

/* The private segment (docs/facts.md §9.5): lane l's bytes [0, scratch_lane_bytes) lie at FLAT_SCRATCH +
 * l * scratch_lane_bytes. An access outside them is a kernel error. */
static int private_address(ctx_t *c, wave_t *w, int l, uint64_t off, int bytes, uint64_t *out) {
  uint32_t n = c->L->scratch_lane_bytes;
  if (!n) return fail(c, E_MEMORY, off, "private (scratch) access at offset %#llx, but the kernel has no private "
                      "segment", (unsigned long long)off);
  if (off + (uint64_t)bytes > n)
    return fail(c, E_MEMORY, off, "private (scratch) access of %d bytes at offset %#llx is past the end of the "
                "kernel's %u-byte private segment", bytes, (unsigned long long)off, n);
  *out = sget64(w, 102) + (uint64_t)l * n + off;
  return 0;
}

/* Per-lane addresses of a FLAT, GLOBAL or SCRATCH instruction (docs/facts.md §6.2, §9.5); `bytes` is the access
 * width, for the private segment's bounds. */
static int flat_addresses(ctx_t *c, wave_t *w, const insn_t *in, int bytes, uint64_t *addr) {
  uint64_t exec = exec_of(w);
  int seg = in->imm2;
  if (seg == 1) { /* SCRATCH: offset = VGPR (if SVE) + SGPR (if any) + immediate, within each lane's segment */
    uint32_t soff = 0;
    if (in->src[2] >= 0 && sval(c, w, in, in->src[2], &soff)) return 1;
    if (in->src[0] >= 0 && check_v(c, w, in->src[0] - 256, 1, 0)) return 1;
    const uint32_t *voff = in->src[0] >= 0 ? vrow(w, in->src[0]) : NULL;
    for (int l = 0; l < LANES; l++) {
      addr[l] = 0;
      uint32_t off = (voff ? voff[l] : 0) + soff + (uint32_t)in->imm;
      if (exec >> l & 1 && private_address(c, w, l, off, bytes, &addr[l])) return 1;
    }
    return 0;
  }
  if (in->src[2] >= 0) { /* SGPR base + 32-bit VGPR offset */
    if (check_s(c, w, in->src[2], 2, 0) || check_v(c, w, in->src[0] - 256, 1, 0)) return 1;
    uint64_t base = sget64(w, in->src[2]);
    const uint32_t *off = vrow(w, in->src[0]);
    for (int l = 0; l < LANES; l++) addr[l] = base + off[l] + (int64_t)in->imm;
    return 0;
  }
  if (check_v(c, w, in->src[0] - 256, 2, 0)) return 1;
  const uint32_t *lo = vrow(w, in->src[0]), *hi = vrow(w, in->src[0] + 1);
  uint64_t pb = c->L->private_base;
  for (int l = 0; l < LANES; l++) {
    addr[l] = ((uint64_t)lo[l] | ((uint64_t)hi[l] << 32)) + (int64_t)in->imm;
    if (seg == 0 && exec >> l & 1 && pb && addr[l] >= pb && addr[l] - pb < (1ull << 32) &&
        private_address(c, w, l, addr[l] - pb, bytes, &addr[l]))
      return 1; /* FLAT in the private aperture: the lane's own private segment */
  }
  return 0;
}

static int flat_op(ctx_t *c, wave_t *w, const insn_t *in) {
  memop_t m;
  atomic_t a;
  int atomic = vmem_atomic_of(in, &a);
  if (!atomic && !memop_of(in->op, &m))
    return fail(c, E_UNIMPL, 0, "memory instruction not implemented by the execution core");
  uint64_t addr[LANES];
  if (flat_addresses(c, w, in, atomic ? a.bytes : m.bytes, addr)) return 1;
  int flat = in->imm2 == 0 ? 2 : 1;
  return atomic ? vmem_atomic(c, w, in, &a, addr, NULL, flat) : vmem(c, w, in, &m, addr, NULL, flat);
}

/* The addressing mode one MUBUF instruction uses, from its V# (docs/facts.md §3.1) and IDXEN/OFFEN/ADD_TID.
   CDNA3/CDNA4 (gfx9 family) V#: stride word1[29:16], SWIZZLE_ENABLE word1[31] (one bit; word1[30] is the
   cache-swizzle hint, which does not change addresses), INDEX_STRIDE word3[22:21] = 8/16/32/64, ADD_TID_ENABLE
   word3[23]. gfx9 has no ELEMENT_SIZE field: the swizzle element is 4 bytes. With ADD_TID, DATA_FORMAT
   (word3[18:15]) holds stride bits 17:14 instead of a format, so it does not mark the resource unbound. */
typedef struct {
  uint32_t stride, num, index_stride;
  int idxen, add_tid, swizzled, unbound;
} bufmode_t;

enum { SWIZZLE_ELEMENT = 4 };

static int buffer_mode(ctx_t *c, const uint32_t *rs, int idxen, const memop_t *m, bufmode_t *b) {
  uint32_t dfmt = (rs[3] >> 15) & 0xF;
  b->idxen = idxen;
  b->add_tid = (rs[3] >> 23) & 1;
  b->num = rs[2];
  b->stride = (rs[1] >> 16) & 0x3FFF;
  if (b->add_tid) b->stride |= dfmt << 14;
  b->unbound = !b->add_tid && dfmt == 0; /* data_format INVALID: an unbound resource (docs/facts.md §3.1) */
  b->index_stride = 8u << ((rs[3] >> 21) & 3);
  /* Swizzling reorders records by index; an access with no index (IDXEN = 0, ADD_TID = 0) through a
     swizzle-enabled V# is addressed and range checked as a raw buffer. The ISA's formula would spread such
     offsets by index_stride, but HipKittens' direct-to-LDS loads (bits 62 and 63 set, IDXEN = 0, linear
     offsets, 16-byte accesses) are correct on MI355X, so that is not what gfx950 does. */
  b->swizzled = (rs[1] >> 31) && (idxen || b->add_tid);
  if (b->add_tid && idxen)
    return fail(c, E_UNIMPL, 0, "ADD_TID with IDXEN: the ISA documents no range check for this buffer type");
  if (!b->swizzled) return 0;
  if (m->bytes > SWIZZLE_ELEMENT)
    return fail(c, E_INVALID, 0, "%d-byte access through a swizzled buffer: larger than its %d-byte element",
                m->bytes, SWIZZLE_ELEMENT);
  if (b->stride % SWIZZLE_ELEMENT || (idxen && b->stride == 0))
    return fail(c, E_INVALID, 0, "swizzled buffer with stride %u: not a nonzero multiple of the element size",
                b->stride);
  return 0;
}

/* One lane: the byte offset from base + soffset, and the bitmask of its in-range dwords (docs/facts.md §3.2/§3.3;
   swizzled addressing per the CDNA3/CDNA4 ISA, "Swizzled Buffer Addressing"). */
static int buffer_lane(ctx_t *c, const bufmode_t *b, uint32_t index, uint64_t offset, const memop_t *m,
                       uint64_t *boff, uint32_t *ok) {
  uint64_t width = m->bytes < 4 ? (uint64_t)m->bytes : 4;
  *ok = 0;
  if (!b->swizzled) {
    *boff = (uint64_t)index * b->stride + offset;
    if (b->unbound) return 0;
    for (int k = 0; k < m->dwords; k++) {
      int in_range = b->add_tid ? 1                    /* scratch (ADD_TID, no IDXEN): never range checked */
                   : (b->idxen && b->stride) ? index < b->num
                   : offset + 4ull * k + width <= b->num; /* raw; a straddling dword is out of range */
      if (in_range) *ok |= 1u << k;
    }
    return 0;
  }
  uint64_t is = b->index_stride, es = SWIZZLE_ELEMENT;
  if (offset % es + width > es)
    return fail(c, E_INVALID, 0, "access at offset %llu crosses a %llu-byte swizzle element",
                (unsigned long long)offset, (unsigned long long)es);
  *boff = ((index / is) * b->stride + (offset / es) * es) * is + (index % is) * es + offset % es;
  if (b->unbound) return 0;
  if (b->add_tid) { *ok = 1; return 0; }
  if (offset + width > b->stride)
    return fail(c, E_UNIMPL, 0, "swizzled access at offset %llu beyond the %u-byte stride: range check undocumented",
                (unsigned long long)offset, b->stride);
  *ok = index < b->num; /* structured: only the index is checked */
  return 0;
}

/* Every lane's address (base + soffset + the mode's offset) and bitmask of in-range dwords of a MUBUF/MTBUF access
   of m->bytes per lane through the V# at in->src[1]. */
static int buffer_addresses(ctx_t *c, wave_t *w, const insn_t *in, const memop_t *m, uint64_t *addr, uint32_t *ok) {
  if (check_s(c, w, in->src[1], 4, 0)) return 1;
  uint32_t *rs = &w->s[in->src[1]];
  uint64_t base = (uint64_t)rs[0] | ((uint64_t)(rs[1] & 0xFFFF) << 32);
  uint32_t soff;
  if (sval(c, w, in, in->src[2], &soff)) return 1;
  int offen = in->flags >> F_OFFEN & 1, idxen = in->flags >> F_IDXEN & 1;
  bufmode_t b;
  if (buffer_mode(c, rs, idxen, m, &b)) return 1;
  const uint32_t *vidx = NULL, *voff = NULL;
  if (idxen) {
    if (check_v(c, w, in->src[0] - 256, 1, 0)) return 1;
    vidx = vrow(w, in->src[0]);
  }
  if (offen) {
    if (check_v(c, w, in->src[0] - 256 + idxen, 1, 0)) return 1;
    voff = vrow(w, in->src[0] + idxen);
  }
  uint64_t exec = exec_of(w);
  for (int l = 0; l < LANES; l++) {
    addr[l] = base + soff;
    ok[l] = 0;
    if (!(exec >> l & 1)) continue;
    uint32_t index = (idxen ? vidx[l] : 0) + (b.add_tid ? (uint32_t)l : 0);
    uint64_t offset = (offen ? (uint64_t)voff[l] : 0) + (uint32_t)in->imm;
    uint64_t boff = 0;
    if (buffer_lane(c, &b, index, offset, m, &boff, &ok[l])) return 1;
    addr[l] += boff;
  }
  return 0;
}

static int buffer_op(ctx_t *c, wave_t *w, const insn_t *in) {
  memop_t m;
  atomic_t a;
  int atomic = vmem_atomic_of(in, &a);
  if (atomic) m = (memop_t){0, a.bytes, a.bytes / 4, 0, 0, 0, 0}; /* addressed and range checked as a store */
  else if (!memop_of(in->op, &m))
    return fail(c, E_UNIMPL, 0, "memory instruction not implemented by the execution core");
  if (in->flags & (1u << F_LDS) && !atomic) {
    if (!m.load || m.d16 || m.bytes == 8) return fail(c, E_INVALID, 0, "this buffer instruction has no LDS form");
    m.lds = 1;
  }
  uint64_t addr[LANES];
  uint32_t ok[LANES];
  if (buffer_addresses(c, w, in, &m, addr, ok)) return 1;
  return atomic ? vmem_atomic(c, w, in, &a, addr, ok, 0) : vmem(c, w, in, &m, addr, ok, 0);
}

/* buffer_wbl2, buffer_inv: no cache to write back or invalidate (docs/facts.md §9.1); the hardware counts them
   in vmcnt, so a vmcnt wait still has an entry to retire */
static int buffer_cache(ctx_t *c, wave_t *w, const insn_t *in) {
  pending_t *p = issue(c, w, &w->vm, 0);
  p->kind = PK_STORE;
  if (c->tm) { /* the model's guess: a write-back is acknowledged as a store is, an invalidate as an L1 access */
    static const uint64_t no_lanes[LANES];
    tm_vmem(c, w, p, no_lanes, 0, 0, in->op == OP_BUFFER_WBL2, 0);
  }
  return 0;
}

/* ---------------------------------------------------------------- formatted buffer access (docs/facts.md §3.6)
   buffer_{load,store}_format_* take DATA_FORMAT (word3[18:15]), NUM_FORMAT (word3[14:12]) from the V#;
   tbuffer_* take DFMT/NFMT from the instruction (the decoder puts them in imm2: DFMT | NFMT << 4). Loads apply
   the V#'s DST_SEL (word3[11:0], 3 bits per result component: 0 = zero, 1 = one, 4..7 = x..w). */
enum { NF_UNORM, NF_SNORM, NF_USCALED, NF_SSCALED, NF_UINT, NF_SINT, NF_RESERVED, NF_FLOAT };

typedef struct {
  uint8_t n, bytes, bits[4], shift[4]; /* components; element bytes; each component's width and bit position */
} dfmt_t;

/* Component layout per DATA_FORMAT: x in the lowest bits; a packed format's name lists widths from the top down. */
static const dfmt_t DFMT[15] = {
    [1] = {1, 1, {8}, {0}},          [2] = {1, 2, {16}, {0}},         [3] = {2, 2, {8, 8}, {0, 8}},
    [4] = {1, 4, {32}, {0}},         [5] = {2, 4, {16, 16}, {0, 16}}, [6] = {3, 4, {11, 11, 10}, {0, 11, 22}},
    [7] = {3, 4, {10, 11, 11}, {0, 10, 21}},   [8] = {4, 4, {2, 10, 10, 10}, {0, 2, 12, 22}},
    [9] = {4, 4, {10, 10, 10, 2}, {0, 10, 20, 30}}, [10] = {4, 4, {8, 8, 8, 8}, {0, 8, 16, 24}},
    [11] = {2, 8, {32, 32}, {0, 32}}, [12] = {4, 8, {16, 16, 16, 16}, {0, 16, 32, 48}},
    [13] = {3, 12, {32, 32, 32}, {0, 32, 64}}, [14] = {4, 16, {32, 32, 32, 32}, {0, 32, 64, 96}},
};

static inline int nf_is_float(int nfmt) { return nfmt != NF_UINT && nfmt != NF_SINT; }

/* an unsigned float of `mb` mantissa bits and a 5-bit exponent (bias 15): the 11- and 10-bit components */
static float small_float(uint32_t raw, int mb) {
  uint32_t e = raw >> mb, m = raw & ((1u << mb) - 1);
  if (e == 31) return m ? NAN : INFINITY;
  return e ? ldexpf(1.0f + ldexpf((float)m, -mb), (int)e - 15) : ldexpf((float)m, -14 - mb);
}

static uint32_t small_float_bits(float f, int mb) {
  if (f != f) return (31u << mb) | (1u << (mb - 1));
  if (!(f > 0)) return 0; /* negative values and -0 give 0: the format has no sign */
  if (isinf(f)) return 31u << mb;
  int e;
  frexp((double)f, &e);
  e -= 1; /* f = 1.x * 2^e */
  if (e < -14) return (uint32_t)rint(ldexp((double)f, 14 + mb)); /* denormal, or rounds up to the smallest normal */
  double q = rint(ldexp((double)f, mb - e));
  if (q >= ldexp(1.0, mb + 1)) { q /= 2; e++; }
  if (e > 15) return 31u << mb; /* overflow: infinity */
  return (uint32_t)(e + 15) << mb | ((uint32_t)q - (1u << mb));
}

/* one component's bits -> its 32-bit value (a float for the float-like number formats, else an integer) */
static uint32_t fmt_unpack(uint32_t raw, int bits, int nfmt) {
  uint32_t top = bits == 32 ? ~0u : (1u << bits) - 1;
  int32_t sv = bits == 32 ? (int32_t)raw : (int32_t)(raw << (32 - bits)) >> (32 - bits);
  switch (nfmt) {
    case NF_UNORM: return u32f((float)((double)raw / top));
    case NF_SNORM: { double v = (double)sv / (double)(top >> 1); return u32f((float)(v < -1 ? -1 : v)); }
    case NF_USCALED: return u32f((float)raw);
    case NF_SSCALED: return u32f((float)sv);
    case NF_UINT: return raw;
    case NF_SINT: return (uint32_t)sv;
    default: return bits == 32 ? raw : bits == 16 ? u32f((float)f16_of((uint16_t)raw)) : u32f(small_float(raw, bits - 5));
  }
}

/* a 32-bit value -> one component's bits: norm and scaled formats round to nearest even after clamping to
   the component's range (NaN gives 0), integers saturate, floats round to nearest even */
static uint32_t fmt_pack(uint32_t v, int bits, int nfmt) {
  uint32_t top = bits == 32 ? ~0u : (1u << bits) - 1;
  double f = f32(v), hi = (double)(top >> 1), lo = -hi - 1;
  if (nf_is_float(nfmt) && nfmt != NF_FLOAT && f != f) return 0;
  switch (nfmt) {
    case NF_UNORM: return (uint32_t)rint(SAT(f, 0.0, 1.0) * top);
    case NF_SNORM: return (uint32_t)(int64_t)rint(SAT(f, -1.0, 1.0) * hi) & top;
    case NF_USCALED: return (uint32_t)rint(SAT(f, 0.0, (double)top));
    case NF_SSCALED: return (uint32_t)(int64_t)rint(SAT(f, lo, hi)) & top;
    case NF_UINT: return v > top ? top : v;
    case NF_SINT: return (uint32_t)(int64_t)SAT((double)(int32_t)v, lo, hi) & top;
    default: return bits == 32 ? v : bits == 16 ? f16_bits((_Float16)f32(v)) : small_float_bits(f32(v), bits - 5);
  }
}

typedef struct {
  int comps, store, d16, hi, typed;
} fmtop_t;

static int format_op_of(int op, fmtop_t *f) {
  switch (op) {
#define F4(P, name, st, d, t)                                                                                        \
  case P##_##name##_X: *f = (fmtop_t){1, st, d, 0, t}; return 1;                                                    \
  case P##_##name##_XY: *f = (fmtop_t){2, st, d, 0, t}; return 1;                                                   \
  case P##_##name##_XYZ: *f = (fmtop_t){3, st, d, 0, t}; return 1;                                                  \
  case P##_##name##_XYZW: *f = (fmtop_t){4, st, d, 0, t}; return 1;
    F4(OP_BUFFER, LOAD_FORMAT, 0, 0, 0) F4(OP_BUFFER, STORE_FORMAT, 1, 0, 0)
    F4(OP_BUFFER, LOAD_FORMAT_D16, 0, 1, 0) F4(OP_BUFFER, STORE_FORMAT_D16, 1, 1, 0)
    F4(OP_TBUFFER, LOAD_FORMAT, 0, 0, 1) F4(OP_TBUFFER, STORE_FORMAT, 1, 0, 1)
    F4(OP_TBUFFER, LOAD_FORMAT_D16, 0, 1, 1) F4(OP_TBUFFER, STORE_FORMAT_D16, 1, 1, 1)
#undef F4
    case OP_BUFFER_LOAD_FORMAT_D16_HI_X: *f = (fmtop_t){1, 0, 1, 1, 0}; return 1;
    case OP_BUFFER_STORE_FORMAT_D16_HI_X: *f = (fmtop_t){1, 1, 1, 1, 0}; return 1;
    default: return 0;
  }
}

/* a 32-bit component value <-> its d16 register half: float-like formats as fp16 (nearest even), integers
   their low 16 bits (sign-extended back for SINT) */
static inline uint32_t to_d16(uint32_t v, int nfmt) { return nf_is_float(nfmt) ? f16_bits((_Float16)f32(v)) : v & 0xFFFF; }
static inline uint32_t from_d16(uint32_t h, int nfmt) {
  h &= 0xFFFF;
  return nf_is_float(nfmt) ? u32f((float)f16_of((uint16_t)h)) : nfmt == NF_SINT ? (uint32_t)(int32_t)(int16_t)h : h;
}

static int buffer_format(ctx_t *c, wave_t *w, const insn_t *in) {
  fmtop_t f;
  if (!format_op_of(in->op, &f)) return fail(c, E_UNIMPL, 0, "formatted buffer instruction without a form");
  if (check_s(c, w, in->src[1], 4, 0)) return 1;
  const uint32_t *rs = &w->s[in->src[1]];
  int dfmt = f.typed ? in->imm2 & 15 : (int)(rs[3] >> 15 & 15), nfmt = f.typed ? in->imm2 >> 4 & 7 : (int)(rs[3] >> 12 & 7);
  if (!f.typed && (rs[3] >> 23 & 1))
    return fail(c, E_INVALID, 0, "formatted access through an ADD_TID resource, whose DATA_FORMAT field holds "
                "stride bits, not a format");
  if (dfmt == 15 || nfmt == NF_RESERVED)
    return fail(c, E_INVALID, 0, "reserved buffer format (DATA_FORMAT %d, NUM_FORMAT %d)", dfmt, nfmt);
  const dfmt_t *d = &DFMT[dfmt];
  for (int k = 0; k < d->n; k++)
    if (nfmt == NF_FLOAT && d->bits[k] != 32 && d->bits[k] != 16 && d->bits[k] != 11 && d->bits[k] != 10)
      return fail(c, E_INVALID, 0, "DATA_FORMAT %d has a %d-bit component, which has no FLOAT form", dfmt, d->bits[k]);
  int lds = !!(in->flags & (1u << F_LDS));
  if (lds && (f.store || f.d16 || f.comps != 1)) return fail(c, E_INVALID, 0, "this buffer instruction has no LDS form");
  memop_t m = {!f.store, dfmt ? d->bytes : 4, dfmt ? (d->bytes + 3) / 4 : 1, 0, 0, 0, lds};
  uint64_t addr[LANES], exec = exec_of(w);
  uint32_t ok[LANES], full = (1u << m.dwords) - 1;
  if (buffer_addresses(c, w, in, &m, addr, ok)) return 1;
  int nregs = f.hi ? 1 : f.d16 ? (f.comps + 1) / 2 : f.comps, align = m.bytes < 4 ? m.bytes : 4;
  for (int l = 0; l < LANES; l++)
    if (exec >> l & 1 && ok[l] == full && addr[l] % (uint64_t)align)
      return fail(c, E_MEMORY, addr[l], "misaligned %d-byte buffer element at %#llx", m.bytes, (unsigned long long)addr[l]);
  if (f.store) {
    for (int k = f.comps; k < d->n; k++)
      if (dfmt && d->bits[k] % 8)
        return fail(c, E_UNIMPL, 0, "store of %d of the %d components of packed DATA_FORMAT %d: what the others "
                    "become is undocumented", f.comps, d->n, dfmt);
    c->role = nregs > 2 && in->src[2] >= 128 ? ROLE_WIDE_STORE : ROLE_PLAIN;
    int bad = check_v(c, w, in->dst - 256, nregs, 0);
    c->role = ROLE_PLAIN;
    if (bad) return 1;
    pending_t *p = issue(c, w, &w->vm, 0);
    p->kind = PK_STORE;
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1) || ok[l] != full || !dfmt) continue; /* out of range or unbound: dropped */
      uint32_t el[4] = {0, 0, 0, 0};
      int n = f.comps < d->n ? f.comps : d->n;
      for (int k = 0; k < n; k++) {
        uint32_t reg = vrow(w, in->dst + (f.d16 && !f.hi ? k / 2 : k))[l];
        uint32_t v = f.hi ? from_d16(reg >> 16, nfmt) : f.d16 ? from_d16(reg >> 16 * (k & 1), nfmt) : reg;
        el[d->shift[k] / 32] |= fmt_pack(v, d->bits[k], nfmt) << d->shift[k] % 32;
      }
      /* the first n components end on a byte (any others are byte-aligned): only their bytes are written */
      if (gwrite(c, addr[l], el, (uint32_t)(d->shift[n - 1] + d->bits[n - 1]) / 8)) return 1;
    }
    if (c->tm) tm_vmem(c, w, p, addr, m.bytes, exec, 1, 0);
    return 0;
  }
  uint32_t res[LANES][4];
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    uint32_t one = nf_is_float(nfmt) ? 0x3F800000u : 1, comp[4] = {0, 0, 0, one};
    int in_range = ok[l] == full && dfmt;
    if (!in_range) comp[3] = 0; /* out of range or unbound: every component reads 0 */
    else {
      uint32_t el[4] = {0, 0, 0, 0};
      if (gread(c, addr[l], el, m.bytes)) return 1;
      for (int k = 0; k < d->n; k++) {
        uint32_t word = el[d->shift[k] / 32] >> d->shift[k] % 32;
        comp[k] = fmt_unpack(d->bits[k] == 32 ? word : word & ((1u << d->bits[k]) - 1), d->bits[k], nfmt);
      }
    }
    for (int k = 0; k < f.comps; k++) {
      int sel = rs[3] >> 3 * k & 7;
      if (sel == 2 || sel == 3) return fail(c, E_INVALID, 0, "reserved DST_SEL value %d", sel);
      res[l][k] = sel == 0 || !dfmt ? 0 : sel == 1 ? one : comp[sel - 4]; /* unbound: all 0 */
    }
  }
  if (lds) { /* buffer_load_format_x lds: the x result dword to LDS at M0 + lane * 4 (docs/facts.md §3.5) */
    if (c->L->strict && hz_m0_lds_dma(c, w)) return 1;
    pending_t *p = lds_dma_issue(c, w, in, exec, 1, 4);
    for (int l = 0; l < LANES; l++)
      if (exec >> l & 1) lds_dma_put(c, p, l, 0, res[l][0]);
    if (c->tm) tm_vmem(c, w, p, addr, m.bytes, exec, 0, 1);
    return 0;
  }
  if (vdst_check(c, w, in->dst, nregs)) return 1;
  uint32_t old[2][LANES];
  if (f.d16) for (int r = 0; r < nregs; r++) memcpy(old[r], vrow(w, in->dst + r), sizeof old[r]);
  pending_t *p = issue_vload(c, w, &w->vm, 0, in->dst, nregs, exec);
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    for (int r = 0; r < nregs; r++) {
      uint32_t v;
      if (f.hi) v = (old[0][l] & 0xFFFF) | to_d16(res[l][0], nfmt) << 16;
      else if (!f.d16) v = res[l][r];
      else if (2 * r + 1 < f.comps) v = to_d16(res[l][2 * r], nfmt) | to_d16(res[l][2 * r + 1], nfmt) << 16;
      else v = (old[r][l] & 0xFFFF0000u) | to_d16(res[l][2 * r], nfmt); /* d16_x / _xyz's last half: high kept */
      p->data[r * LANES + l] = v;
    }
  }
  if (c->tm) tm_vmem(c, w, p, addr, m.bytes, exec, 0, 0);
  return 0;
}

/* ---------------------------------------------------------------- scalar memory (docs/facts.md §13.3) */

/* Where an SMEM access goes: SBASE holds a 64-bit address (its low 48 bits count) or a buffer descriptor
 * (base in bits 47:0, NUM_RECORDS in its third dword); the offset is the immediate plus the offset SGPR, low
 * two bits ignored. Buffer forms check each dword against NUM_RECORDS (in_range), address forms do not. */
typedef struct {
  uint64_t base;
  int64_t offset;
  int buffer, scratch;
  uint32_t num_records;
} saddr_t;

static int smem_address(ctx_t *c, wave_t *w, const insn_t *in, saddr_t *a) {
  a->buffer = OPS[in->op].buffer;
  a->scratch = OPS[in->op].scratch;
  if (check_s(c, w, in->src[0], a->buffer ? 4 : 2, 0)) return 1;
  a->base = sget64(w, in->src[0]) & 0xFFFFFFFFFFFFull;
  a->num_records = a->buffer ? w->s[in->src[0] + 2] : 0;
  a->offset = in->imm;
  if (in->src[1] >= 0) {
    uint32_t off;
    if (sval(c, w, in, in->src[1], &off)) return 1;
    a->offset += off;
  }
  a->offset &= ~(int64_t)3;
  return 0;
}

static inline int in_range(const saddr_t *a, int dword, int bytes) {
  int64_t off = a->offset + 4 * (int64_t)dword;
  return !a->buffer || (off >= 0 && off + bytes <= (int64_t)a->num_records);
}

static inline uint64_t saddr_at(const saddr_t *a, int dword) {
  return a->base + (uint64_t)(a->offset + 4 * (int64_t)dword);
}

/* Where dword `dword` of an SMEM access lies. s_scratch_*: SBASE + offset is a byte offset into the wave's
 * private segment as the hardware lays it out, its lanes' segments interleaved dword by dword (docs/facts.md
 * §9.7): dword D of it is dword D / 64 of lane D % 64's segment, which the emulator keeps at FLAT_SCRATCH +
 * lane * size (§9.5). */
static int smem_dword_addr(ctx_t *c, wave_t *w, const saddr_t *a, int dword, uint64_t *out) {
  *out = saddr_at(a, dword);
  if (!a->scratch) return 0;
  uint64_t n = c->L->scratch_lane_bytes, d = *out / 4; /* the two low bits are ignored */
  if (*out + 4 > n * LANES)
    return fail(c, E_MEMORY, *out, "scalar scratch access at private offset %#llx is outside the wave's %llu-byte "
                "private segment", (unsigned long long)*out, (unsigned long long)(n * LANES));
  *out = sget64(w, 102) + (d % LANES) * n + 4 * (d / LANES);
  return 0;
}

/* The SGPRs an SMEM result lands in: poisoned now, delivered when s_waitcnt lgkmcnt retires the entry. */
static pending_t *smem_result(ctx_t *c, wave_t *w, const insn_t *in, int n) {
  if (in->dst < 0 || in->dst + n > 102) {
    fail(c, E_INVALID, 0, "scalar memory destination s%d..s%d is out of range", in->dst, in->dst + n - 1);
    return NULL;
  }
  if (check_s(c, w, in->dst, n, 1)) return NULL;
  pending_t *p = issue(c, w, &w->lgkm, 1);
  p->kind = PK_SGPR;
  p->reg = (uint16_t)in->dst;
  p->nregs = (uint8_t)n;
  for (int r = 0; r < n; r++) {
    w->s[in->dst + r] = POISON;
    w->spend[in->dst + r]++;
  }
  if (c->tm) tm_smem(c, w, p);
  return p;
}

/* s_load_dword*, s_buffer_load_dword*: buffer dwords beyond NUM_RECORDS read 0 */
static int smem_load(ctx_t *c, wave_t *w, const insn_t *in) {
  int n = OPS[in->op].dwords;
  saddr_t a;
  uint32_t data[16];
  if (smem_address(c, w, in, &a)) return 1;
  for (int i = 0; i < n; i++) {
    uint64_t at;
    data[i] = 0;
    if (in_range(&a, i, 4) && (smem_dword_addr(c, w, &a, i, &at) || gread(c, at, &data[i], 4))) return 1;
  }
  pending_t *p = smem_result(c, w, in, n);
  if (!p) return 1;
  memcpy(p->data, data, 4u * n);
  return 0;
}

/* s_store_dword*, s_buffer_store_dword*: written at issue (buffer dwords beyond NUM_RECORDS dropped); the
 * entry on the lgkm queue is what s_waitcnt lgkmcnt waits for */
static int smem_store(ctx_t *c, wave_t *w, const insn_t *in) {
  int n = OPS[in->op].dwords;
  saddr_t a;
  uint32_t data[4];
  if (smem_address(c, w, in, &a)) return 1;
  for (int i = 0; i < n; i++)
    if (sval(c, w, in, in->dst + i, &data[i])) return 1;
  uint8_t *at[4];
  for (int i = 0; i < n; i++) { /* every dword is checked before any is written: a faulting store writes nothing */
    uint64_t where;
    if (!in_range(&a, i, 4)) continue;
    if (smem_dword_addr(c, w, &a, i, &where)) return 1;
    if (!(at[i] = translate(c, where, 4)))
      return fail(c, E_MEMORY, where, "scalar memory write of 4 bytes at %#llx is outside every device "
                  "allocation", (unsigned long long)where);
  }
  for (int i = 0; i < n; i++)
    if (in_range(&a, i, 4)) memcpy(at[i], &data[i], 4);
  pending_t *p = issue(c, w, &w->lgkm, 1);
  p->kind = PK_STORE;
  if (c->tm) tm_smem(c, w, p);
  return 0;
}

static int smem_atomic_op(int op, int *aop) {
  switch (op) {
#define SA(name, a)                                                                                               \
  case OP_S_ATOMIC_##name: case OP_S_ATOMIC_##name##_X2: case OP_S_BUFFER_ATOMIC_##name:                          \
  case OP_S_BUFFER_ATOMIC_##name##_X2: *aop = a; return 1;
    SA(SWAP, A_SWAP) SA(CMPSWAP, A_CMPSWAP) SA(ADD, A_ADD) SA(SUB, A_SUB) SA(SMIN, A_SMIN) SA(UMIN, A_UMIN)
    SA(SMAX, A_SMAX) SA(UMAX, A_UMAX) SA(AND, A_AND) SA(OR, A_OR) SA(XOR, A_XOR) SA(INC, A_INC) SA(DEC, A_DEC)
#undef SA
    default: return 0;
  }
}

/* s_atomic_*, s_buffer_atomic_*: SDATA holds the data (cmpswap: then the compare value); with GLC the old
 * value returns to SDATA's first dword(s). A buffer atomic outside NUM_RECORDS changes nothing, returns 0. */
static int smem_atomic(ctx_t *c, wave_t *w, const insn_t *in) {
  int words = OPS[in->op].dwords, bytes = 4 * words, aop;
  if (!smem_atomic_op(in->op, &aop)) return fail(c, E_UNIMPL, 0, "scalar atomic without an operation");
  saddr_t a;
  if (smem_address(c, w, in, &a)) return 1;
  uint32_t d[4] = {0};
  int nd = aop == A_CMPSWAP ? 2 * words : words;
  for (int i = 0; i < nd; i++)
    if (sval(c, w, in, in->dst + i, &d[i])) return 1;
  uint64_t x = words == 2 ? (uint64_t)d[0] | (uint64_t)d[1] << 32 : d[0];
  uint64_t y = words == 2 ? (uint64_t)d[2] | (uint64_t)d[3] << 32 : d[1];
  uint64_t old = 0;
  if (in_range(&a, 0, bytes)) {
    uint64_t at = saddr_at(&a, 0);
    uint8_t *m = translate(c, at, (uint32_t)bytes);
    if (!m)
      return fail(c, E_MEMORY, at, "scalar atomic of %d bytes at %#llx is outside every device allocation", bytes,
                  (unsigned long long)at);
    memcpy(&old, m, (size_t)bytes);
    uint64_t nv = atomic_apply(aop, bytes, old, x, y);
    memcpy(m, &nv, (size_t)bytes);
  }
  if (!(in->flags >> F_SC0 & 1)) {
    pending_t *p = issue(c, w, &w->lgkm, 1);
    p->kind = PK_STORE;
    if (c->tm) tm_smem(c, w, p);
    return 0;
  }
  pending_t *p = smem_result(c, w, in, words);
  if (!p) return 1;
  memcpy(p->data, &old, (size_t)bytes);
  return 0;
}

/* s_memtime, s_memrealtime: the launch's wave-instruction count so far, a monotonic 64-bit counter
 * (docs/facts.md §13.3: the emulator has no clock) */
static int smem_time(ctx_t *c, wave_t *w, const insn_t *in) {
  pending_t *p = smem_result(c, w, in, 2);
  if (!p) return 1;
  uint64_t t = c->L->insn_count;
  memcpy(p->data, &t, 8);
  return 0;
}

static int smem_nop(ctx_t *c, wave_t *w, const insn_t *in) { return 0; }

/* ---------------------------------------------------------------- wave step */

#include "optable.h"

static int step(ctx_t *c, wave_t *w) {
  emu_launch *L = c->L;
  if (w->pc < 0 || w->pc >= L->nprog) return fail(c, E_INVALID, 0, "program counter left the kernel");
  const insn_t *in = &L->prog[w->pc];
  L->insn_count++;
  if (in->op >= OP_COUNT) return fail(c, E_INVALID, 0, "instruction record with opcode id %d", in->op);
  c->next = w->pc + 1;
  insn_t indexed;
  if (w->mode & MODE_GPR_IDX_EN) { /* rare: run a copy whose VGPR operands are indexed */
    indexed = *in;
    if (gpr_indexed(c, w, &indexed)) return 1;
    in = &indexed;
  }
  if (L->strict) {
    w->ws++;
    c->cur = in;
    c->hz_nw = 0;
    if (hz_before(c, w, in)) return L->err;
  }
  uint32_t csr = 0;
  int fenv = w->mode != MODE_DEFAULT && fp_mode_enter(w, in->op, &csr); /* rare: a non-default float mode */
  int rc = OPS[in->op].run(c, w, in);
  if (fenv) fp_mode_leave(in->op, csr);
  if (rc) return rc;
  if (L->strict) {
    if (L->err) return L->err; /* a check inside a delivery at retire (an LDS race) */
    hz_commit(c, w, in);
  }
  w->pc = c->next;
  return 0;
}

/* ---------------------------------------------------------------- launch */

static void init_wave(ctx_t *c, wave_t *w, int wi, const uint32_t wg[3], uint32_t threads);
#include "timing_model.c"

static void init_wave(ctx_t *c, wave_t *w, int wi, const uint32_t wg[3], uint32_t threads) {
  emu_launch *L = c->L;
  memset(w->s, 0, sizeof w->s);
  for (size_t i = 0; i < (size_t)NV * LANES; i++) w->v[i] = POISON;
  memset(w->vpend, 0, sizeof w->vpend);
  memset(w->spend, 0, sizeof w->spend);
  if (L->strict) hz_reset(w);
  w->vm.n = w->lgkm.n = 0;
  w->scc = 0;
  w->mode = L->mode;
  w->status = W_RUN;
  w->pc = L->entry;
  for (uint32_t i = 0; i < L->user_sgpr_count && i < 32; i++) w->s[i] = L->user_sgprs[i];
  uint32_t k = L->user_sgpr_count;
  for (int d = 0; d < 3; d++)
    if (L->wg_id_enable >> d & 1) w->s[k++] = wg[d];
  if (L->wg_info) w->s[k++] = 0;
  uint64_t exec = 0;
  uint32_t bx = L->block[0], by = L->block[1];
  for (int l = 0; l < LANES; l++) {
    uint32_t flat = (uint32_t)wi * LANES + (uint32_t)l;
    if (flat >= threads) {
      w->v[l] = 0;
      continue;
    }
    exec |= 1ull << l;
    uint32_t x = flat % bx, y = (flat / bx) % by, z = flat / (bx * by);
    uint32_t v0 = x;
    if (L->tid_dims >= 2) v0 |= y << 10;
    if (L->tid_dims >= 3) v0 |= z << 20;
    w->v[l] = v0;
  }
  w->s[126] = (uint32_t)exec;
  w->s[127] = (uint32_t)(exec >> 32);
  /* FLAT_SCRATCH: the wave's private segments, poisoned (architected flat scratch, docs/facts.md §9.5) */
  uint64_t wave_bytes = (uint64_t)L->scratch_lane_bytes * LANES;
  if (wave_bytes) {
    uint64_t base = L->scratch_base + (uint64_t)wi * wave_bytes;
    w->s[102] = (uint32_t)base;
    w->s[103] = (uint32_t)(base >> 32);
    uint8_t *h = translate(c, base, (uint32_t)wave_bytes);
    for (uint64_t i = 0; h && i + 4 <= wave_bytes; i += 4) memcpy(h + i, &(uint32_t){POISON}, 4);
  }
}

static int run_workgroup(ctx_t *c, const uint32_t wg[3]) {
  emu_launch *L = c->L;
  uint32_t threads = L->block[0] * L->block[1] * L->block[2];
  int nw = (int)((threads + LANES - 1) / LANES);
  if (check_budget(c)) return L->err;
  for (uint32_t i = 0; i < c->lds_size; i += 4) memcpy(c->lds + i, &(uint32_t){POISON}, 4);
  if (c->lds_pend) memset(c->lds_pend, 0, c->lds_size);
  c->lds_pend_n = 0;
  if (c->lds_own) lds_tracking_reset(c);
  for (int i = 0; i < nw; i++) init_wave(c, &c->waves[i], i, wg, threads);
  c->nwaves = nw;
  int rr = 0;
  for (;;) {
    int alive = 0, running = 0;
    for (int i = 0; i < nw; i++) {
      if (c->waves[i].status != W_DONE) alive++;
      if (c->waves[i].status == W_RUN) running++;
    }
    if (!alive) return 0;
    if (!running) { /* every live wave waits at the barrier: release them */
      if (c->lds_own) lds_barrier_released(c);
      for (int i = 0; i < nw; i++)
        if (c->waves[i].status == W_BARRIER) c->waves[i].status = W_RUN;
      continue;
    }
    int pick, quantum;
    if (L->seeded) {
      int k = (int)(rng_next(c) % (uint64_t)running);
      for (pick = 0; pick < nw; pick++)
        if (c->waves[pick].status == W_RUN && k-- == 0) break;
      quantum = 1 + (int)(rng_next(c) % 24);
    } else {
      while (c->waves[rr % nw].status != W_RUN) rr++;
      pick = rr % nw;
      rr++;
      quantum = 1 << 30;
    }
    c->cur_wave = pick;
    wave_t *w = &c->waves[pick];
    for (int q = 0; q < quantum && w->status == W_RUN; q++) {
      if (step(c, w)) return L->err;
      if (!(L->insn_count & 4095) && check_budget(c)) return L->err;
      if (L->insn_count > L->max_insns)
        return fail(c, E_LIMIT, 0, "instruction limit of %llu wave-instructions reached (an endless loop?)",
                    (unsigned long long)L->max_insns);
    }
  }
}

int emu_run(emu_launch *L) {
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.L = L;
  c.last_region = -1;
  c.rng = L->seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  if (!c.rng) c.rng = 1;
  L->err = 0;
  L->insn_count = 0;
  c.started = host_seconds();
  c.lds_size = L->lds_bytes;
  if (L->model) return tm_run(&c);
  uint32_t threads = L->block[0] * L->block[1] * L->block[2];
  int nw = (int)((threads + LANES - 1) / LANES);
  c.waves = calloc((size_t)nw, sizeof(wave_t));
  c.lds = malloc(c.lds_size + 16);
  c.lds_pend = L->strict ? malloc(c.lds_size + 16) : NULL;
  c.lds_granules = c.lds_size / 16 + 2;
  c.lds_own = L->strict ? calloc(c.lds_granules, sizeof(lds_owner_t)) : NULL;
  c.lds_rd = L->strict ? calloc((size_t)c.lds_granules * (size_t)nw, sizeof(lds_read_t)) : NULL;
  if (nw > LDS_MAX_WAVES) return fail(&c, E_INVALID, 0, "a workgroup of %d waves (at most %d)", nw, LDS_MAX_WAVES);
  int ok = c.waves && c.lds && (!L->strict || (c.lds_pend && c.lds_own && c.lds_rd));
  for (int i = 0; ok && i < nw; i++) {
    c.waves[i].v = malloc((size_t)NV * LANES * 4);
    if (!c.waves[i].v) ok = 0;
  }
  int rc = 0;
  if (!ok) rc = fail(&c, E_INVALID, 0, "host out of memory for the emulated workgroup");
  for (uint32_t z = 0; !rc && z < L->grid[2]; z++)
    for (uint32_t y = 0; !rc && y < L->grid[1]; y++)
      for (uint32_t x = 0; !rc && x < L->grid[0]; x++) {
        uint32_t wg[3] = {x, y, z};
        rc = run_workgroup(&c, wg);
        if (rc) memcpy(L->err_wg, wg, sizeof wg);
      }
  if (rc && c.waves) L->err_insn = c.waves[c.cur_wave].pc;
  if (c.waves)
    for (int i = 0; i < nw; i++) free(c.waves[i].v);
  free(c.waves);
  free(c.lds);
  free(c.lds_pend);
  free(c.lds_own);
  free(c.lds_rd);
  return rc;
}

/* ---------------------------------------------------------------- single-wave entry for unit tests */

/* Run one wave (workgroup (0,0,0), EXEC from `exec`) from the given register state to s_endpgm, then copy the
 * final state back: s[128] SGPRs (VCC, M0 and EXEC included), v[512*64] vector registers, *scc.
 * LDS (L->lds_bytes) starts as `lds` (if non-NULL) and is copied back. */
int emu_run_wave_state(emu_launch *L, uint32_t *s, uint32_t *v, int32_t *scc, uint8_t *lds) {
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.L = L;
  c.last_region = -1;
  c.rng = 1;
  L->err = 0;
  L->insn_count = 0;
  wave_t w;
  memset(&w, 0, sizeof w);
  w.v = v;
  memcpy(w.s, s, sizeof w.s);
  w.scc = *scc;
  w.mode = L->mode;
  w.pc = L->entry;
  w.status = W_RUN;
  if (L->strict) hz_reset(&w);
  c.waves = &w;
  c.nwaves = 1;
  c.lds_size = L->lds_bytes;
  c.lds = lds;
  c.lds_pend = L->strict && L->lds_bytes ? calloc(L->lds_bytes + 16, 1) : NULL;
  int rc = 0;
  while (!rc && w.status != W_DONE) {
    if (w.status == W_BARRIER) w.status = W_RUN; /* a lone wave passes its barriers */
    rc = step(&c, &w);
    if (!rc && L->insn_count > L->max_insns) rc = fail(&c, E_LIMIT, 0, "instruction limit reached");
  }
  if (rc) L->err_insn = w.pc;
  memcpy(s, w.s, sizeof w.s);
  *scc = w.scc;
  free(c.lds_pend);
  return rc;
}
