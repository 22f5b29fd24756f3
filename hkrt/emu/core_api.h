/* The execution core's interface: decoded instruction records, device memory regions, one launch.
 * Included by core.c (after <stdint.h>) and read by build_core.py as cffi's declarations, so it holds
 * plain C declarations only: no preprocessor lines. */
typedef struct {
  uint16_t op, size;
  uint32_t pc;
  int16_t dst, sdst, src[4];
  uint32_t literal;
  int32_t imm, imm2;
  uint32_t flags, flags2;
} insn_t;

typedef struct {
  uint64_t base, size;
  uint8_t *host;
} emu_region;

/* One instruction a traced workgroup issued under the timing model (cycles of the effective clock). */
typedef struct {
  int64_t cycle;      /* when it issued */
  int64_t done;       /* when its result is ready: data arrived, store acknowledged, LDS done, ALU/MFMA
                         written; its issue cycle for instructions without a result */
  uint32_t wg, pc;    /* linear workgroup id; code-object offset of the instruction */
  uint32_t waited;    /* cycles since the wave's previous issue (since its workgroup started, for the first) */
  uint16_t op, cu;    /* opcode (isa.MNEMONICS index); chip-wide CU id */
  uint8_t wave, simd, reason, pad; /* reason: why it could not issue when last considered before (timing.STALL_REASONS) */
} emu_trace_rec;

/* The timing model's parameters (cycles of the effective clock, bytes per cycle) and results; filled by
 * hkrt/emu/timing.py, which documents every field and its source. */
typedef struct {
  int32_t xcds, cus_per_xcd, simds, wg_slots;       /* wg_slots: workgroups resident per CU (occupancy) */
  int32_t sample;                                    /* 1: run one XCD's share of representative rounds */
  int32_t valu_cycles, trans_cycles, valu64_cycles;  /* VALU occupancy of a wave64 instruction */
  int32_t valu_latency, trans_latency, salu_latency, branch_cycles, smem_latency;
  int32_t mfma_writeback, barrier_latency, wg_launch_cycles;
  int32_t lds_latency, lds_phase_b128[64], lds_phase_b96[64], lds_phase_b64[64], lds_phase_w64[64];
  int32_t l1_latency, l2_latency, mall_latency, hbm_latency, store_latency;
  int32_t line_bytes, l1_lines, l1_ways, l2_lines, l2_ways, mall_lines, mall_ways;
  double ta_bytes_per_cycle, lds_dma_bytes_per_cycle, l2_bytes_per_cycle, mall_bytes_per_cycle,
    hbm_bytes_per_cycle;
  emu_trace_rec *trace;                              /* NULL: no trace; else room for trace_cap records */
  uint64_t trace_cap, trace_n;                       /* trace_n: records of the traced workgroups (may exceed cap) */
  uint32_t trace_count;                              /* the workgroups traced: ids 0 .. count - 1 */
  /* results */
  uint64_t cycles, round_cycles, tail_cycles;
  uint64_t wg_run;
  uint64_t cu_cycles;                                /* sum over simulated CUs of their busy span */
  uint64_t xdl_busy, valu_busy, lds_busy, ta_busy;   /* unit-cycles, summed over simulated units */
  uint64_t stall_waitcnt, stall_barrier, stall_issue, stall_dependency, stall_unit;  /* wave-cycles */
  uint64_t lds_conflict_cycles, mfma_ops;
  uint64_t bytes_l1, bytes_l2, bytes_mall, bytes_hbm, bytes_stored;
} emu_model;

typedef struct {
  const insn_t *prog;
  int32_t nprog;
  const int32_t *index; /* (pc - code_base) / 4 -> record, -1 elsewhere */
  uint64_t code_base;   /* code-object address of byte 0 of the indexed range (records' pc use this space) */
  uint64_t image_base;  /* device address where the code object image is mapped (for s_getpc_b64) */
  uint32_t code_words;
  int32_t entry;        /* record index of the entry point */
  const emu_region *regions;
  int32_t nregions;
  uint32_t grid[3], block[3];
  uint32_t lds_bytes;
  uint32_t user_sgpr_count, wg_id_enable, wg_info, tid_dims;
  uint32_t user_sgprs[32];
  uint64_t shared_base;
  uint64_t private_base;       /* the flat aperture of the private segment (src_private_base) */
  uint64_t scratch_base;       /* device memory holding the private segments of one workgroup's waves */
  uint32_t scratch_lane_bytes; /* private segment bytes per work-item (0: the kernel has none) */
  uint32_t mode;               /* every wave's initial MODE register (from the kernel descriptor) */
  int32_t strict, seeded;
  int32_t mfma_model;   /* 0: exact sum, one fp32 rounding; 1: MMA-Sim's CDNA3 chunked model (core.c) */
  uint64_t seed, max_insns;
  double max_seconds;   /* host seconds the launch may take, 0 = no limit */
  int32_t stop;         /* set (by another thread) to end the launch: E_INTERRUPTED */
  emu_model *model;     /* NULL: functional only (waves interleave by round robin or seed) */
  /* results */
  uint64_t insn_count;
  int32_t err, err_insn, err_wave;
  uint32_t err_wg[3];
  uint64_t err_addr;
  char err_msg[256];
} emu_launch;

int emu_run(emu_launch *L);
int emu_run_wave_state(emu_launch *L, uint32_t *s, uint32_t *v, int32_t *scc, uint8_t *lds);
