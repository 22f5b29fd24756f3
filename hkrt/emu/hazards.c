/* Strict mode's checks of what the hardware does not interlock (included by core.c; docs/facts.md §11).
 *
 * 1. Required wait states. Every wave counts the wait states it has issued (one per instruction, N + 1 for
 *    s_nop N). Each register remembers which instruction last wrote it and when (and each VGPR when an MFMA
 *    last read it as SrcC or a wide store as data); a read or write compares the wait states since with the
 *    rule of docs/facts.md §11.1 that applies to that producer and this consumer. Writes are committed
 *    after the instruction has run, so an instruction never sees its own writes.
 * 2. Cross-wave LDS races. Each 16-byte LDS granule remembers the wave that last wrote it (which of its bytes, the
 *    write's sequence number in that wave, its instruction) and, per wave, that wave's last read of it. An
 *    access is ordered after another wave's earlier one only by an s_barrier released after that one retired
 *    (s_waitcnt lgkmcnt for DS instructions, vmcnt for LDS DMA): at each release every wave's count of retired
 *    LDS instructions is kept as its "safe" mark. Reads must follow writes (RAW), writes follow writes (WAW,
 *    except between atomics) and reads (WAR); a DS atomic is both a read and a write.
 * Both are off (and cost a test of a pointer or flag) unless the launch is strict.
 */

enum { K_NONE, K_VALU, K_TRANS, K_MFMA, K_SALU, K_MEM };
enum { ROLE_PLAIN, ROLE_SRCC, ROLE_LANESEL, ROLE_MASK, ROLE_WIDE_STORE };
#define HZ_LONG_AGO (-(1ll << 40))
#define HZ_MAX_WAIT 20 /* no rule asks for more (P + 4 with at most 16 passes) */

static void hz_reset(wave_t *w) {
  w->ws = 0;
  w->dgemm_ws = HZ_LONG_AGO;
  for (int r = 0; r < NV; r++) {
    vhz_t *h = &w->vh[r];
    h->ws = h->c_ws = h->st_ws = HZ_LONG_AGO;
    h->kind = K_NONE;
  }
  for (int r = 0; r < 128; r++) {
    w->sh[r].ws = HZ_LONG_AGO;
    w->sh[r].kind = K_NONE;
  }
  w->lds_seq = w->lds_done = w->dma_seq = 0;
}

/* What the current instruction is, for the rules: its issue class (isa.TIMING_CLASSES). */
static inline int hz_class(const ctx_t *c) { return OP_TCLASS[c->cur->op]; }
static inline int hz_is_valu(int tc) { return tc == TC_VALU || tc == TC_VALU64 || tc == TC_TRANS; }
static inline int hz_is_mem(int tc) { return tc == TC_VMEM || tc == TC_LDS; }
static inline int hz_passes(const insn_t *in) { return mfma_cycles(in) / 4; }
static inline int hz_dgemm(int op) { return OP_HZ[op] & HZF_DGEMM; }

/* An XDL MFMA's result read by VALU, memory or an MFMA's SrcA/B, or overwritten by VALU or a load (gfx950:
 * one more than gfx940 except for 2-pass ops, docs/facts.md §11.3). */
static inline int hz_xdl_result(int p) { return p + 3 + (p != 2); }
/* A DGEMM's result: 4x4x4 (4 passes) and 16x16x4 rows of the table */
static inline int hz_dgemm_result(int p, int mem) { return p <= 4 ? (mem ? 9 : 6) : (mem ? 18 : 19); }

static void reg_name(char *out, size_t n, int file_v, int r) {
  if (!file_v) snprintf(out, n, r == 106 ? "vcc_lo" : r == 107 ? "vcc_hi" : r == 124 ? "m0" : r == 126 ? "exec_lo"
                        : r == 127 ? "exec_hi" : "s%d", r);
  else snprintf(out, n, "%c%d", r >= 256 ? 'a' : 'v', r & 255);
}

/* Fail the launch naming both instructions, the register and the wait states required and found. */
static int hz_fail(ctx_t *c, int file_v, int r, int producer, int need, int64_t found, const char *rule) {
  const insn_t *p = &c->L->prog[producer];
  char reg[16];
  reg_name(reg, sizeof reg, file_v, r);
  return fail(c, E_HAZARD, 0,
              "wait-state hazard (%s): %s at pc 0x%x, %s: %d wait states after %s at pc 0x%x, %d required",
              rule, OP_NAME[c->cur->op], c->cur->pc, reg, (int)(found < 0 ? 0 : found), OP_NAME[p->op], p->pc,
              need);
}

static inline int64_t hz_since(const wave_t *w, int64_t ws) { return w->ws - ws - 1; }

/* The wait states the current instruction (class tc) needs after the MFMA in h before reading register range
 * [reg, reg + n) of what it wrote; *rule says which row. */
static int hz_after_mfma(const ctx_t *c, const vhz_t *h, int tc, int reg, int n, const char **rule) {
  int p = h->passes, op = c->cur->op, dg = hz_dgemm(h->op);
  if (tc == TC_MFMA && c->role == ROLE_SRCC) {
    if (h->base == reg && h->n == n) { /* the same accumulator range */
      *rule = "MFMA result read as SrcC of the next MFMA of its chain";
      if (dg) return p <= 4 && hz_dgemm(op) && hz_passes(c->cur) <= 4 ? 4 : 0;
      return p == 2 ? 2 : 0;
    }
    *rule = "MFMA result overlapped as SrcC";
    if (dg) return hz_dgemm(op) ? (p <= 4 ? 4 : 17) : 0;
    return hz_dgemm(op) ? p + 1 + (p != 2) : p + 2;
  }
  if (tc == TC_MFMA) {
    *rule = "MFMA result read as SrcA/B";
    return dg ? (p <= 4 ? 6 : 19) : hz_xdl_result(p);
  }
  *rule = "MFMA result read by VALU or memory";
  return dg ? hz_dgemm_result(p, hz_is_mem(tc)) : hz_xdl_result(p);
}

/* ... after a VALU (kind K_VALU or K_TRANS) wrote what register `reg` holds. */
static int hz_after_valu(const ctx_t *c, const vhz_t *h, int tc, int reg, const char **rule) {
  const insn_t *in = c->cur;
  int op = in->op, need = 0;
#define AT_LEAST(n, why) if (need < (n)) need = (n), *rule = (why)
  if (tc == TC_MFMA) {
    if (!(OP_HZ[h->op] & HZF_DOT)) AT_LEAST(2, "VALU write read by MFMA");
    return need;
  }
  if (in->flags & (1u << F_DPP)) AT_LEAST(2, "VALU write read by DPP");
  if (OP_HZ[op] & HZF_PERMLANE_SWAP) AT_LEAST(2, "VALU write read by v_permlane*_swap");
  if (op == OP_V_READLANE_B32 || op == OP_V_READFIRSTLANE_B32) AT_LEAST(1, "VALU write read by v_readlane");
  if (h->kind == K_TRANS && tc != TC_TRANS && hz_is_valu(tc)) AT_LEAST(1, "transcendental result read by VALU");
  if (h->fwd && hz_is_valu(tc)) AT_LEAST(1, "partial-register (dst_sel/op_sel) result used by VALU");
  if ((OP_HZ[h->op] & HZF_DOT) && (hz_is_valu(tc) || hz_is_mem(tc)) &&
      !(op == h->op && in->src[2] == 256 + reg)) /* the same dot op may take it as its accumulator at once */
    AT_LEAST(3, "dot product result read by VALU or memory");
#undef AT_LEAST
  return need;
}

/* A read (writing = 0) or write of VGPRs reg .. reg + n - 1 by the current instruction. */
static int hz_vector(ctx_t *c, wave_t *w, int reg, int n, int writing) {
  int tc = hz_class(c), op = c->cur->op;
  for (int i = 0; i < n && reg + i < NV; i++) {
    int r = reg + i;
    vhz_t *h = &w->vh[r];
    int64_t since = hz_since(w, h->ws);
    if (since >= HZ_MAX_WAIT && c->role == ROLE_PLAIN && (!writing || (hz_since(w, h->c_ws) >= HZ_MAX_WAIT &&
                                                                      hz_since(w, h->st_ws) >= HZ_MAX_WAIT)))
      continue; /* every rule long satisfied: the common case */
    int need = 0;
    const char *rule = "";
    if (!writing) {
      if (h->kind == K_MFMA) need = hz_after_mfma(c, h, tc, reg, n, &rule);
      else if (h->kind == K_VALU || h->kind == K_TRANS) need = hz_after_valu(c, h, tc, r, &rule);
      if (since < need) return hz_fail(c, 1, r, h->pc, need, since, rule);
      if (c->role == ROLE_SRCC && tc == TC_MFMA && !hz_dgemm(op)) {
        h->c_ws = w->ws;
        h->c_pc = w->pc;
        h->c_passes = (uint8_t)hz_passes(c->cur);
      } else if (c->role == ROLE_WIDE_STORE) {
        h->st_ws = w->ws;
        h->st_pc = w->pc;
      }
      continue;
    }
    if (h->kind == K_MFMA && (hz_is_valu(tc) || hz_is_mem(tc))) {
      need = hz_dgemm(h->op) ? (h->passes <= 4 ? 6 : 11) : hz_xdl_result(h->passes);
      if (since < need) return hz_fail(c, 1, r, h->pc, need, since, "MFMA result overwritten by VALU or a load");
    }
    if (hz_is_valu(tc)) {
      if (h->kind != K_MFMA && since < 1 && h->fwd)
        return hz_fail(c, 1, r, h->pc, 1, since, "partial-register (dst_sel/op_sel) result used by VALU");
      if (h->kind != K_MFMA && since < 3 && (OP_HZ[h->op] & HZF_DOT) && h->op != op)
        return hz_fail(c, 1, r, h->pc, 3, since, "dot product result overwritten by another VALU op");
      int64_t c_since = hz_since(w, h->c_ws);
      int p = h->c_passes, war = p <= 2 ? 1 : p == 4 ? 3 : p == 8 ? 7 : 15;
      if (c_since < war) return hz_fail(c, 1, r, h->c_pc, war, c_since, "MFMA SrcC overwritten by VALU");
      int64_t st_since = hz_since(w, h->st_ws);
      if (st_since < 2) return hz_fail(c, 1, r, h->st_pc, 2, st_since, "store data overwritten by VALU");
    }
  }
  if (writing) {
    if (c->hz_nw == HZ_WRITES) return fail(c, E_INVALID, 0, "instruction writes too many register ranges");
    c->hz_w[c->hz_nw++] = (hz_write_t){(uint16_t)reg, (uint8_t)n, 1};
  }
  return 0;
}

/* A read or write of SGPRs (codes 0..127) reg .. reg + n - 1 by the current instruction. */
static int hz_scalar(ctx_t *c, wave_t *w, int reg, int n, int writing) {
  if (writing) {
    if (c->hz_nw == HZ_WRITES) return fail(c, E_INVALID, 0, "instruction writes too many register ranges");
    c->hz_w[c->hz_nw++] = (hz_write_t){(uint16_t)reg, (uint8_t)n, 0};
    return 0;
  }
  int tc = hz_class(c);
  if (tc != TC_VMEM && tc != TC_MFMA && !hz_is_valu(tc)) return 0; /* SALU, SMEM...: no rule reads SGPRs */
  for (int i = 0; i < n && reg + i < 128; i++) {
    shz_t *h = &w->sh[reg + i];
    if (h->kind != K_VALU && h->kind != K_TRANS) continue;
    int need = 0;
    const char *rule = "";
    if (tc == TC_VMEM) need = 5, rule = "VALU write of an SGPR read by VMEM";
    else if (hz_is_valu(tc) || tc == TC_MFMA) {
      if (c->role == ROLE_LANESEL) need = 4, rule = "VALU write of the lane select of v_readlane/v_writelane";
      else if (c->role != ROLE_MASK) need = 2, rule = "VALU write of an SGPR read by VALU";
    }
    int64_t since = hz_since(w, h->ws);
    if (since < need) return hz_fail(c, 0, reg + i, h->pc, need, since, rule);
  }
  return 0;
}

/* A VALU reads VCCZ or EXECZ (operand 251 / 252) as data: 5 wait states after a VALU wrote VCC / EXEC. */
static int hz_zero_flag(ctx_t *c, wave_t *w, int code) {
  if (!hz_is_valu(hz_class(c))) return 0;
  shz_t *h = &w->sh[code == 251 ? 106 : 126];
  int64_t since = hz_since(w, h->ws);
  if ((h->kind == K_VALU || h->kind == K_TRANS) && since < 5)
    return hz_fail(c, 0, code == 251 ? 106 : 126, h->pc, 5, since, "VALU write of VCC/EXEC read as VCCZ/EXECZ");
  return 0;
}

/* Rules on registers an instruction reads implicitly (EXEC, VCC, M0), checked before it runs. */
static int hz_before(ctx_t *c, wave_t *w, const insn_t *in) {
  int tc = OP_TCLASS[in->op], op = in->op, cls = OP_HZ[op];
  if (!cls && tc != TC_MFMA && !(in->flags & (1u << F_DPP)) && op != OP_V_READLANE_B32 &&
      op != OP_V_READFIRSTLANE_B32 && op != OP_V_WRITELANE_B32)
    return 0; /* no rule on implicit reads: the common case */
  shz_t *exec = &w->sh[126];
  int exec_valu = exec->kind == K_VALU || exec->kind == K_TRANS;
  int64_t since = hz_since(w, exec->ws);
  if (exec_valu && tc == TC_MFMA && since < 4)
    return hz_fail(c, 0, 126, exec->pc, 4, since, "VALU write of EXEC before an MFMA");
  if (exec_valu && (op == OP_V_READLANE_B32 || op == OP_V_READFIRSTLANE_B32 || op == OP_V_WRITELANE_B32) &&
      since < 4)
    return hz_fail(c, 0, 126, exec->pc, 4, since, "VALU write of EXEC before v_readlane/v_writelane");
  if (exec_valu && (in->flags & (1u << F_DPP)) && since < 5)
    return hz_fail(c, 0, 126, exec->pc, 5, since, "VALU write of EXEC before a DPP instruction");
  if (!cls) return 0;
  if ((cls & HZF_PERMLANE_SWAP) && exec_valu && OPS[exec->op].cmpx && since < 4)
    return hz_fail(c, 0, 126, exec->pc, 4, since, "v_cmpx write of EXEC before v_permlane*_swap");
  if (cls & HZF_DIV_FMAS)
    for (int r = 106; r <= 107; r++) {
      shz_t *vcc = &w->sh[r];
      int64_t s = hz_since(w, vcc->ws);
      if ((vcc->kind == K_VALU || vcc->kind == K_TRANS) && s < 4)
        return hz_fail(c, 0, r, vcc->pc, 4, s, "VALU write of VCC before v_div_fmas");
    }
  if ((cls & HZF_FMA64) && hz_since(w, w->dgemm_ws) < 2)
    return hz_fail(c, 1, in->dst - 256, w->dgemm_pc, 2, hz_since(w, w->dgemm_ws), "DGEMM before v_fma_f64");
  return 0;
}

/* SALU writes M0, then an LDS DMA (which reads M0 as its LDS address): 1 wait state. */
static int hz_m0_lds_dma(ctx_t *c, wave_t *w) {
  shz_t *m0 = &w->sh[124];
  int64_t since = hz_since(w, m0->ws);
  if (m0->kind == K_SALU && since < 1)
    return hz_fail(c, 0, 124, m0->pc, 1, since, "SALU write of M0 before an LDS DMA");
  return 0;
}

/* Does the VALU instruction place its result in part of its destination register, shifted (SDWA dst_sel other
 * than DWORD, VOP3 op_sel[3], an fp8 conversion's op_sel[2] byte pair, any SR fp4 conversion)? */
static int hz_forwards_partial(const insn_t *in) {
  if ((in->flags & (1u << F_SDWA)) && ((in->flags2 >> SDWA_DST_SEL) & 7) != 6) return 1;
  if (in->flags >> (F_OPSEL + 3) & 1) return 1;
  return ((OP_HZ[in->op] & HZF_FP8_DST_SEL) && (in->flags >> (F_OPSEL + 2) & 1)) || (OP_HZ[in->op] & HZF_FP4_DST_SEL);
}

/* After the instruction ran: its register writes take its wait-state stamp. */
static void hz_commit(ctx_t *c, wave_t *w, const insn_t *in) {
  int tc = OP_TCLASS[in->op];
  uint8_t kind = tc == TC_MFMA ? K_MFMA : tc == TC_TRANS ? K_TRANS : hz_is_valu(tc) ? K_VALU
               : tc == TC_SALU ? K_SALU : K_MEM;
  uint8_t fwd = c->hz_nw && hz_is_valu(tc) && hz_forwards_partial(in), passes = (uint8_t)hz_passes(in);
  for (int k = 0; k < c->hz_nw; k++) {
    hz_write_t *e = &c->hz_w[k];
    for (int i = 0; i < e->n; i++) {
      int r = e->reg + i;
      if (e->file_v && r < NV) {
        vhz_t *h = &w->vh[r];
        h->ws = w->ws;
        h->pc = w->pc;
        h->op = (uint16_t)in->op;
        h->base = e->reg;
        h->kind = kind;
        h->passes = passes;
        h->n = e->n;
        h->fwd = fwd;
      } else if (!e->file_v && r < 128) {
        w->sh[r].ws = w->ws;
        w->sh[r].pc = w->pc;
        w->sh[r].op = (uint16_t)in->op;
        w->sh[r].kind = kind;
      }
    }
  }
  c->hz_nw = 0;
  if (hz_dgemm(in->op)) {
    w->dgemm_ws = w->ws;
    w->dgemm_pc = w->pc;
  }
  if (in->op == OP_S_NOP) w->ws += in->imm & 15; /* s_nop N: N + 1 wait states */
}

/* ---------------------------------------------------------------- cross-wave LDS races */

enum { LW_DS, LW_DMA, LW_ATOMIC };            /* how the last write of an LDS granule was made */
enum { LA_READ, LA_WRITE, LA_ATOMIC, LA_DMA }; /* an access: a read, a write, both at once, a delivered DMA */
#define LDS_NO_WAVE 0xFF

/* Fail the launch naming both accesses (what wave `me` does at record `pc`, what wave `other` did at `opc`);
 * out of line, so that lds_access stays small. */
__attribute__((noinline, cold)) static int lds_race_fail(ctx_t *c, int me, int access, int pc, uint32_t at, int other, int opc, int earlier_read,
                         int dma) {
  static const char *const verb[] = {"reads", "writes", "atomically updates", "receives an LDS DMA into"};
  const insn_t *in = &c->L->prog[pc], *p = &c->L->prog[opc];
  return fail(c, E_HAZARD, at,
              "LDS race: %s at pc 0x%x (wave %d) %s LDS byte 0x%x, %s by %s at pc 0x%x (wave %d) with no s_barrier "
              "after that %s retired (s_waitcnt %s, then s_barrier)",
              OP_NAME[in->op], in->pc, me, verb[access], at, earlier_read ? "read" : "written", OP_NAME[p->op], p->pc,
              other, earlier_read ? "read" : "write", dma ? "vmcnt" : "lgkmcnt");
}

/* One granule's part (`mask` of its bytes) of an access by wave `me` (see lds_access_lanes). */
__attribute__((always_inline)) static inline int lds_granule(ctx_t *c, int me, uint32_t g, uint16_t mask, int access, int kind, uint32_t seq,
                              int pc) {
  const uint32_t mine = 1u << me;
  lds_owner_t *e = &c->lds_own[g];
  if ((e->bytes & mask) && e->wave != me && !(kind == LW_ATOMIC && e->kind == LW_ATOMIC) &&
      e->seq > c->safe[e->kind][e->wave])
    return lds_race_fail(c, me, access, pc, g * 16 + (uint32_t)__builtin_ctz(e->bytes & mask), e->wave, e->pc, 0,
                         e->kind == LW_DMA);
  if (access == LA_READ) {
    lds_read_t *r = &c->lds_rd[(size_t)me * c->lds_granules + g];
    /* an earlier read not yet ordered keeps its bytes: this later one stands for both */
    uint16_t kept = mask != 0xFFFF && (e->readers & mine) && r->seq > c->safe[LW_DS][me] ? r->bytes : 0;
    r->seq = seq;
    r->pc = pc;
    r->bytes = kept | mask;
    e->readers |= (uint16_t)mine;
    return 0;
  }
  for (uint32_t others = e->readers & ~mine; others; others &= others - 1) {
    int i = __builtin_ctz(others);
    const lds_read_t *r = &c->lds_rd[(size_t)i * c->lds_granules + g];
    if ((r->bytes & mask) && r->seq > c->safe[LW_DS][i])
      return lds_race_fail(c, me, access, pc, g * 16 + (uint32_t)__builtin_ctz(r->bytes & mask), i, r->pc, 1, 0);
  }
  if (mask == 0xFFFF) e->readers = 0; /* those reads are ordered before this write, so before what follows it */
  if (e->wave == me && kind == LW_ATOMIC && e->kind == LW_DS && e->seq > c->safe[LW_DS][me]) {
    /* an atomic after this wave's own plain write that is not yet ordered: other waves' atomics still race
     * with that write, until this later (so later-retiring) access is ordered */
    e->bytes |= mask;
    e->seq = seq;
    return 0;
  }
  e->bytes = e->wave == me && e->kind == kind ? (uint16_t)(e->bytes | mask) : mask;
  e->wave = (uint8_t)me;
  e->seq = seq;
  e->pc = pc;
  e->kind = (uint8_t)kind;
  return 0;
}

/* An access by the current wave of bytes [addr[l], addr[l] + n) for every lane l in `lanes` (its LDS sequence
 * number `seq`, record `pc`). An earlier write of another wave must be ordered before it (atomics need not be
 * ordered among themselves), and a write or atomic must also come after every other wave's read of those bytes;
 * then the access records itself. Tracked per 16-byte granule with a mask of its bytes, for a whole instruction
 * at once. */
__attribute__((always_inline)) static inline int lds_access_lanes(ctx_t *c, const uint32_t *addr, uint64_t lanes,
                                                                  uint32_t n, int access, uint32_t seq, int pc) {
  const int me = c->cur_wave, kind = access == LA_DMA ? LW_DMA : access == LA_ATOMIC ? LW_ATOMIC : LW_DS;
  const uint16_t span = (uint16_t)((1u << n) - 1); /* n <= 16 */
  for (; lanes; lanes &= lanes - 1) {
    uint32_t start = addr[__builtin_ctzll(lanes)], end = start + n, off = start & 15;
    if (!lds_in(c, start, n)) continue;
    if (off + n <= 16) { /* inside one granule: the common case */
      if (lds_granule(c, me, start >> 4, (uint16_t)(span << off), access, kind, seq, pc)) return 1;
      continue;
    }
    /* across two granules (then end is not a multiple of 16) */
    if (lds_granule(c, me, start >> 4, (uint16_t)(0xFFFFu << off), access, kind, seq, pc) ||
        lds_granule(c, me, end >> 4, (uint16_t)((1u << (end & 15)) - 1), access, kind, seq, pc))
      return 1;
  }
  return 0;
}

/* A new workgroup: no LDS granule has been written or read yet. */
static void lds_tracking_reset(ctx_t *c) {
  for (uint32_t g = 0; g < c->lds_granules; g++)
    c->lds_own[g] = (lds_owner_t){.wave = LDS_NO_WAVE};
  memset(c->safe, 0, sizeof c->safe);
}

/* Every live wave passed the barrier: what each had retired by then is ordered before what follows. */
static void lds_barrier_released(ctx_t *c) {
  for (int i = 0; i < c->nwaves; i++) {
    c->safe[LW_DS][i] = c->safe[LW_ATOMIC][i] = c->waves[i].lds_done;
    c->safe[LW_DMA][i] = c->waves[i].dma_seq;
  }
}
