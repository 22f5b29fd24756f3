/* Strict mode's checks of what the hardware does not interlock (included by core.c; docs/facts.md §11).
 *
 * 1. Required wait states. Every wave counts the wait states it has issued (one per instruction, N + 1 for
 *    s_nop N). Each register remembers which instruction last wrote it and when (and each VGPR when an MFMA
 *    last read it as SrcC or a wide store as data); a read or write compares the wait states since with the
 *    rule of docs/facts.md §11.1 that applies to that producer and this consumer. Writes are committed
 *    after the instruction has run, so an instruction never sees its own writes.
 * 2. Cross-wave LDS races. Each LDS dword remembers the wave that last wrote it (and which of its bytes),
 *    the write's sequence number in that wave and its instruction. A write is ordered before another wave's
 *    access only by an s_barrier released after the write retired (s_waitcnt lgkmcnt for ds_write, vmcnt for
 *    LDS DMA): at each release every wave's count of retired writes is kept as its "safe" mark.
 * Both are off (and cost a test of a pointer or flag) unless the launch is strict.
 */

enum { K_NONE, K_VALU, K_TRANS, K_MFMA, K_SALU, K_MEM };
enum { ROLE_PLAIN, ROLE_SRCC, ROLE_LANESEL, ROLE_MASK, ROLE_WIDE_STORE };
#define HZ_LONG_AGO (-(1ll << 40))
#define HZ_MAX_WAIT 20 /* no rule asks for more (P + 4 with at most 16 passes) */

static void hz_reset(wave_t *w) {
  w->ws = 0;
  for (int r = 0; r < NV; r++) {
    vhz_t *h = &w->vh[r];
    h->ws = h->c_ws = h->st_ws = HZ_LONG_AGO;
    h->kind = K_NONE;
  }
  for (int r = 0; r < 128; r++) {
    w->sh[r].ws = HZ_LONG_AGO;
    w->sh[r].kind = K_NONE;
  }
  w->lds_seq = w->lds_done = w->dma_seq = w->safe_ds = w->safe_dma = 0;
}

/* What the current instruction is, for the rules: its issue class (isa.TIMING_CLASSES). */
static inline int hz_class(const ctx_t *c) { return OP_TCLASS[c->cur->op]; }
static inline int hz_is_valu(int tc) { return tc == TC_VALU || tc == TC_VALU64 || tc == TC_TRANS; }
static inline int hz_is_mem(int tc) { return tc == TC_VMEM || tc == TC_LDS; }
static inline int hz_passes(const insn_t *in) { return mfma_cycles(in) / 4; }

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
      if (h->kind == K_MFMA) {
        if (tc == TC_MFMA && c->role == ROLE_SRCC) {
          if (!(h->base == reg && h->n == n)) need = h->passes + 1, rule = "MFMA result overlapped as SrcC";
        } else if (tc == TC_MFMA) {
          need = h->passes + 4, rule = "MFMA result read as SrcA/B";
        } else {
          need = h->passes + 4, rule = "MFMA result read by VALU or memory";
        }
      } else if (h->kind == K_VALU || h->kind == K_TRANS) {
        if (tc == TC_MFMA) need = 2, rule = "VALU write read by MFMA";
        else if (c->cur->flags & (1u << F_DPP)) need = 2, rule = "VALU write read by DPP";
        else if (op == OP_V_READLANE_B32 || op == OP_V_READFIRSTLANE_B32)
          need = 1, rule = "VALU write read by v_readlane";
        else if (h->kind == K_TRANS && tc != TC_TRANS && hz_is_valu(tc))
          need = 1, rule = "transcendental result read by VALU";
      }
      if (since < need) return hz_fail(c, 1, r, h->pc, need, since, rule);
      if (c->role == ROLE_SRCC) {
        h->c_ws = w->ws;
        h->c_pc = w->pc;
        h->c_passes = (uint8_t)hz_passes(c->cur);
      } else if (c->role == ROLE_WIDE_STORE) {
        h->st_ws = w->ws;
        h->st_pc = w->pc;
      }
      continue;
    }
    if (h->kind == K_MFMA && (hz_is_valu(tc) || hz_is_mem(tc)) && since < h->passes + 4)
      return hz_fail(c, 1, r, h->pc, h->passes + 4, since, "MFMA result overwritten by VALU or a load");
    if (hz_is_valu(tc)) {
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

/* Rules on registers an instruction reads implicitly (EXEC, M0), checked before it runs. */
static int hz_before(ctx_t *c, wave_t *w, const insn_t *in) {
  int tc = OP_TCLASS[in->op], op = in->op;
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

/* After the instruction ran: its register writes take its wait-state stamp. */
static void hz_commit(ctx_t *c, wave_t *w, const insn_t *in) {
  int tc = OP_TCLASS[in->op];
  uint8_t kind = tc == TC_MFMA ? K_MFMA : tc == TC_TRANS ? K_TRANS : hz_is_valu(tc) ? K_VALU
               : tc == TC_SALU ? K_SALU : K_MEM;
  for (int k = 0; k < c->hz_nw; k++) {
    hz_write_t *e = &c->hz_w[k];
    for (int i = 0; i < e->n; i++) {
      int r = e->reg + i;
      if (e->file_v && r < NV) {
        vhz_t *h = &w->vh[r];
        h->ws = w->ws;
        h->pc = w->pc;
        h->kind = kind;
        h->passes = (uint8_t)hz_passes(in);
        h->base = e->reg;
        h->n = e->n;
      } else if (!e->file_v && r < 128) {
        w->sh[r].ws = w->ws;
        w->sh[r].pc = w->pc;
        w->sh[r].kind = kind;
      }
    }
  }
  c->hz_nw = 0;
  if (in->op == OP_S_NOP) w->ws += in->imm & 15; /* s_nop N: N + 1 wait states */
}

/* ---------------------------------------------------------------- cross-wave LDS races */

/* An LDS access of bytes [addr, addr + n) by wave `me`; a write (or delivered DMA) records itself. */
static int lds_race(ctx_t *c, int me, uint32_t addr, uint32_t n, int write, int dma, uint32_t seq, int pc) {
  if (!lds_in(c, addr, n)) return 0;
  for (uint32_t d = addr >> 2; d <= (addr + n - 1) >> 2; d++) {
    uint32_t lo = d * 4 < addr ? addr - d * 4 : 0, hi = d * 4 + 4 > addr + n ? addr + n - d * 4 : 4;
    uint8_t mask = (uint8_t)(((1u << hi) - 1) & ~((1u << lo) - 1));
    lds_owner_t *e = &c->lds_own[d];
    int mine = e->gen == c->wg_gen && e->wave == me;
    if (e->gen == c->wg_gen && !mine && (e->bytes & mask)) {
      const wave_t *o = &c->waves[e->wave];
      if (e->seq > (e->dma ? o->safe_dma : o->safe_ds)) {
        const insn_t *p = &c->L->prog[e->pc], *in = &c->L->prog[pc];
        uint32_t at = d * 4 + (uint32_t)__builtin_ctz(e->bytes & mask);
        return fail(c, E_HAZARD, at,
                    "LDS race: %s at pc 0x%x (wave %d) %s LDS byte 0x%x, written by %s at pc 0x%x (wave %d) with no "
                    "s_barrier after that write retired (s_waitcnt %s, then s_barrier)",
                    OP_NAME[in->op], in->pc, me, write ? "writes" : "reads", at, OP_NAME[p->op], p->pc,
                    e->wave, e->dma ? "vmcnt" : "lgkmcnt");
      }
    }
    if (write) {
      e->bytes = mine ? (uint8_t)(e->bytes | mask) : mask;
      e->gen = c->wg_gen;
      e->wave = (uint8_t)me;
      e->seq = seq;
      e->pc = pc;
      e->dma = (uint8_t)dma;
    }
  }
  return 0;
}

/* Every live wave passed the barrier: what each had retired by then is ordered before what follows. */
static void lds_barrier_released(ctx_t *c) {
  for (int i = 0; i < c->nwaves; i++) {
    c->waves[i].safe_ds = c->waves[i].lds_done;
    c->waves[i].safe_dma = c->waves[i].dma_seq;
  }
}
