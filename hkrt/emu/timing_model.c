/* The timing model: gfx950 compute units, cycle by cycle, driving the functional core.
 *
 * Included by core.c (one translation unit: it steps waves with core.c's step()). Execution-driven: a
 * wave's next instruction executes when the model issues it, so loads land at their modelled time and
 * the functional results follow the modelled order. Parameters and their sources: hkrt/emu/timing.py
 * and docs/perf-model.md. The model, in short:
 *  - a CU has 4 SIMDs; each cycle one SIMD is considered (round robin); among its waves, in order of
 *    s_setprio priority then age, at most one instruction per wave and one per issue class issues;
 *  - per SIMD one matrix (XDL) pipe busy for each MFMA's cycles, one VALU busy per VALU instruction;
 *    a vector register written by VALU or MFMA is ready after its latency (MFMA accumulation chains of
 *    the same shape bypass the write-back); s_nop, branches and barriers cost cycles;
 *  - s_waitcnt waits for its counters; vmcnt returns in order, SMEM out of order;
 *  - LDS: one server per CU; each instruction's lane addresses are split into the measured phases, each
 *    phase costs the largest number of distinct dwords in one of 64 banks; direct-to-LDS writes occupy it
 *    when their data arrives;
 *  - vector memory: the CU's address path (TA) serialises instructions by bytes; each 128-byte line is
 *    looked up in the CU's L1, its XCD's L2, the chip's Infinity Cache (MALL), else HBM; every level has
 *    a load-to-use latency, L2/MALL/HBM are bandwidth servers whose arbiters take the requesting CUs in
 *    turn, stores drain to HBM in the time reads leave it idle, and in-flight lines merge requests;
 *  - the chip: workgroups go round robin over the XCDs and then over the CUs of each; a CU holds
 *    wg_slots workgroups and starts the next of its queue when one ends. CUs advance together in windows
 *    of WINDOW cycles so that the shared caches and servers see requests nearly in time order.
 */

#define WINDOW 128
#define NEVER INT64_MAX
#define MAX_SLOTS 32
#define DMA_RING 256

enum { R_NONE = 0, R_WAITCNT, R_BARRIER, R_ISSUE, R_DEPENDENCY, R_UNIT };

typedef struct {
  uint64_t tag;        /* line address + 1 (0 = empty) */
  int64_t avail, last; /* data arrival, last use */
} cline_t;

typedef struct {
  cline_t *e;
  int sets, ways;
} cache_t;

/* A server's capacity calendar: the bytes booked in each CAL_CYCLES-cycle slot of time, over a horizon of
 * CAL_SLOTS slots (a ring; each slot remembers which slot of time it holds). */
#define CAL_CYCLES 32
#define CAL_SLOTS (1 << 16)

typedef struct {
  double free, bpc; /* when the last request queued is served; bytes per cycle */
  double *flow;     /* per requesting CU: when its last request is served */
  int nflows;
  double *booked;   /* bytes booked per calendar slot */
  int64_t *slot_of; /* which slot of time each ring entry holds */
  int64_t full_from, full_until; /* a run of slots known to be full */
} server_t;

typedef struct {
  wave_t *waves;
  int nw, active, live, arrived;
  uint32_t wg[3];
  uint32_t id;
  uint8_t *lds, *lds_pend;
  int64_t start; /* when it started; once it ended, when its slot was freed */
  int round; /* which of the CU's rounds (by queue position, 0, 1, 2...) it belongs to (sampling) */
} group_t;

typedef struct {
  int id, xcd, k, j; /* chip-wide id, XCD; index among the modelled CUs, and within its XCD */
  uint64_t rounds; /* of its whole queue, before sampling trims it */
  group_t slots[MAX_SLOTS];
  uint32_t *queue;
  int qn, qpos;
  int64_t now, end, round_end[3], next_due, idle_wake;
  int idle, waves_placed, done;
  int64_t xdl_free[4], valu_free[4];
  double ta_free, lds_free;
  struct { int64_t at; double cycles; } dma[DMA_RING];
  int dma_head, dma_n;
  cache_t l1;
} cu_t;

/* HBM: reads are served as by every server (serve). Stored data is written back from the caches lazily:
 * it waits in a buffer (the dirty lines the L2s can hold) and drains in time reads leave HBM idle, so a
 * burst of stores does not queue ahead of the reads that follow it; only a full buffer takes read time. */
typedef struct {
  server_t s;
  double dirty, cap, idle_from; /* bytes waiting, buffer size, idle time accounted up to */
} hbm_t;

typedef struct tm_s {
  emu_model *P;
  cu_t *cus, *cur; /* cur: the CU being stepped */
  int ncu;
  cache_t *l2, mall;
  server_t *l2s, malls;
  hbm_t hbm;
  uint64_t age;
  int nw_per_group;
  uint32_t threads;
} tm_t;

/* ---------------------------------------------------------------- caches and servers */

static int cache_init(cache_t *ca, int lines, int ways) {
  ca->ways = ways > 0 ? ways : 1;
  ca->sets = lines / ca->ways > 0 ? lines / ca->ways : 1;
  ca->e = calloc((size_t)ca->sets * ca->ways, sizeof(cline_t));
  return ca->e != NULL;
}

static cline_t *cache_lookup(cache_t *ca, uint64_t line, int *hit) {
  uint64_t h = line * 0x9E3779B97F4A7C15ull;
  cline_t *set = ca->e + (size_t)((h >> 20) % (uint64_t)ca->sets) * ca->ways;
  cline_t *victim = set;
  for (int i = 0; i < ca->ways; i++) {
    if (set[i].tag == line + 1) {
      *hit = 1;
      return &set[i];
    }
    if (set[i].tag == 0 || (victim->tag != 0 && set[i].last < victim->last)) victim = &set[i];
  }
  *hit = 0;
  victim->tag = line + 1;
  victim->avail = NEVER;
  return victim;
}

static int server_init(server_t *s, double bpc, int nflows) {
  s->bpc = bpc;
  s->nflows = nflows;
  s->flow = calloc((size_t)nflows, sizeof(double));
  s->booked = calloc(CAL_SLOTS, sizeof(double));
  s->slot_of = calloc(CAL_SLOTS, sizeof(int64_t));
  return s->flow && s->booked && s->slot_of;
}

static void server_free(server_t *s) {
  free(s->flow);
  free(s->booked);
  free(s->slot_of);
}

/* Books `bytes` of the server's capacity, the earliest there is from time t on, and returns when the last
 * byte booked is served. A ring entry holding a later slot of time (a backlog beyond the horizon) counts
 * as full. */
static double book(server_t *s, double t, double bytes) {
  if (bytes <= 0) return t; /* (a store whose every lane is out of range moves nothing) */
  double cap = s->bpc * CAL_CYCLES, left = bytes, end = t;
  int64_t slot = (int64_t)(t / CAL_CYCLES);
  for (;;) {
    if (slot >= s->full_from && slot < s->full_until) slot = s->full_until;
    size_t i = (size_t)slot & (CAL_SLOTS - 1);
    if (s->slot_of[i] < slot) {
      s->slot_of[i] = slot;
      s->booked[i] = 0;
    }
    double room = s->slot_of[i] == slot ? cap - s->booked[i] : 0;
    if (room > 1e-9) {
      double take = left < room ? left : room;
      s->booked[i] += take;
      left -= take;
      end = (double)slot * CAL_CYCLES + s->booked[i] / s->bpc;
      if (left <= 0) break;
    }
    /* slot is full now: extend the known run, or start a new one */
    if (slot == s->full_until) s->full_until++;
    else if (slot + 1 == s->full_from) s->full_from = slot;
    else if (slot < s->full_from || slot > s->full_until) s->full_from = slot, s->full_until = slot + 1;
    slot++;
  }
  double alone = t + bytes / s->bpc;
  return end > alone ? end : alone;
}

/* A transfer of `bytes` for CU `flow` requested at time t; returns when it ends. The server's arbiter
 * takes the requesting CUs in turn: a CU's requests are served in order, at an equal share of the
 * bandwidth among the CUs that have requests waiting (all of it when no other CU has).
 * A request is decided when it arrives, from the CUs waiting then; it cannot slow the requests decided
 * before it, and CUs that start waiting later are not counted. The deeper a CU's own queue, the more such
 * CUs its request misses, and together the CUs would get more than the bandwidth. So every request books
 * its bytes in the capacity calendar, and one queued more than QUEUE_TURNS turns behind its own CU's
 * earlier requests ends no sooner than its booking. A CU with little queued is served in its turns, ahead
 * of the others' backlog (as a round-robin arbiter serves it); its bytes still take capacity, which
 * delays the requests booked after it. */
#define QUEUE_TURNS 8 /* the lines of one wave's 16-byte-per-lane access, requested together */

static double serve(server_t *s, int flow, double t, double bytes) {
  int waiting = 1;
  for (int i = 0; i < s->nflows; i++) waiting += i != flow && s->flow[i] > t;
  double turn = bytes * waiting / s->bpc;
  double start = s->flow[flow] > t ? s->flow[flow] : t;
  double end = start + turn;
  double booked = book(s, t, bytes);
  if (start - t > QUEUE_TURNS * turn) end = booked > start ? booked : start;
  s->flow[flow] = end;
  if (end > s->free) s->free = end;
  return end;
}

static void hbm_drain(hbm_t *h, double t) {
  double from = h->s.free > h->idle_from ? h->s.free : h->idle_from;
  if (t > from) {
    h->dirty -= (t - from) * h->s.bpc;
    if (h->dirty < 0) h->dirty = 0;
  }
  if (t > h->idle_from) h->idle_from = t;
}

static double hbm_read(hbm_t *h, int flow, double t, double bytes) {
  hbm_drain(h, t);
  return serve(&h->s, flow, t, bytes);
}

/* Returns when the written data has been taken: at once, unless the buffer is full. */
static double hbm_write(hbm_t *h, int flow, double t, double bytes) {
  hbm_drain(h, t);
  h->dirty += bytes;
  if (h->dirty <= h->cap) return t;
  double over = h->dirty - h->cap;
  h->dirty = h->cap;
  return serve(&h->s, flow, t, over);
}

static inline int64_t ceil64(double x) { return (int64_t)x + ((double)(int64_t)x < x); }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* When the data of `line`, requested by CU u at time t, arrives at the CU. A line already in flight at a
 * level is merged into (it arrives when the earlier request's data does, but no sooner than a hit would). */
static int64_t fetch_line(tm_t *T, cu_t *u, uint64_t line, int64_t t) {
  emu_model *P = T->P;
  double lb = P->line_bytes;
  int hit;
  cline_t *e1 = cache_lookup(&u->l1, line, &hit);
  e1->last = t;
  if (hit) {
    P->bytes_l1 += (uint64_t)lb;
    return max64(t + P->l1_latency, e1->avail);
  }
  cline_t *e2 = cache_lookup(&T->l2[u->xcd], line, &hit);
  e2->last = t;
  double t2 = serve(&T->l2s[u->xcd], u->j, (double)t, lb);
  P->bytes_l2 += (uint64_t)lb;
  int64_t arrive;
  if (hit) {
    arrive = max64(ceil64(t2) + P->l2_latency, e2->avail);
  } else {
    cline_t *e3 = cache_lookup(&T->mall, line, &hit);
    e3->last = t;
    double t3 = serve(&T->malls, u->k, t2, lb);
    P->bytes_mall += (uint64_t)lb;
    if (hit) {
      arrive = max64(ceil64(t3) + P->mall_latency, e3->avail);
    } else {
      double t4 = hbm_read(&T->hbm, u->k, t3, lb);
      P->bytes_hbm += (uint64_t)lb;
      arrive = ceil64(t4) + P->hbm_latency;
      e3->avail = arrive;
    }
    e2->avail = arrive;
  }
  e1->avail = arrive;
  return arrive;
}

/* ---------------------------------------------------------------- memory hooks (called from core.c) */

static void note_due(cu_t *u, int64_t done) {
  if (done < u->next_due) u->next_due = done;
}

/* Apply the LDS occupancy of direct-to-LDS writes whose data has arrived by time t. */
static void lds_take_dma(emu_model *P, cu_t *u, double t) {
  while (u->dma_n && u->dma[u->dma_head].at <= t) {
    double at = (double)u->dma[u->dma_head].at;
    u->lds_free = (u->lds_free > at ? u->lds_free : at) + u->dma[u->dma_head].cycles;
    P->lds_busy += (uint64_t)u->dma[u->dma_head].cycles;
    u->dma_head = (u->dma_head + 1) % DMA_RING;
    u->dma_n--;
  }
}

/* Bank-conflict cycles of one LDS instruction. The lanes are split into phases, measured on an MI355X for
 * ds_read_b128/b96/b64 and ds_write_b64; other widths move one bank-width of data per phase (lanes in
 * order). A phase costs the largest number of distinct dwords that fall into one bank. Reads see 64 banks,
 * except ds_read_b96, which was measured to see 32, as ds_write_b64 does; writes are taken to see 32. */
static int lds_cycles(emu_model *P, const uint32_t *a0, const uint32_t *a1, int bytes, uint64_t exec,
                      int write, int *ideal) {
  int per_lane = bytes * (a1 ? 2 : 1);
  int banks = (!write && per_lane != 12) ? 64 : 32;
  int32_t seq[64];
  const int32_t *phase_of = seq;
  int nphase;
  if (!write && per_lane == 16) phase_of = P->lds_phase_b128, nphase = 4;
  else if (!write && per_lane == 12) phase_of = P->lds_phase_b96, nphase = 8;
  else if (!write && per_lane == 8) phase_of = P->lds_phase_b64, nphase = 2;
  else if (write && per_lane == 8) phase_of = P->lds_phase_w64, nphase = 4;
  else {
    int lanes = banks * 4 / (per_lane < 4 ? 4 : per_lane);
    if (lanes < 1) lanes = 1;
    if (lanes > 64) lanes = 64;
    nphase = 64 / lanes;
    for (int l = 0; l < 64; l++) seq[l] = l / lanes;
  }
  int total = 0;
  *ideal = 0;
  for (int ph = 0; ph < nphase; ph++) {
    /* the distinct dwords of the phase, chained per bank (one dword read by several lanes is broadcast) */
    uint32_t dw_of[LANES * 8];
    int16_t head[64], next[LANES * 8];
    int count[64] = {0}, worst = 0, dwords = 0;
    memset(head, -1, sizeof head);
    for (int l = 0; l < LANES; l++) {
      if (!(exec >> l & 1) || phase_of[l] != ph) continue;
      for (int half = 0; half < (a1 ? 2 : 1); half++) {
        uint32_t base = (half ? a1[l] : a0[l]) >> 2;
        for (int k = 0; k < (bytes + 3) / 4; k++) {
          uint32_t dw = base + (uint32_t)k;
          int b = (int)(dw % (uint32_t)banks), dup = 0;
          for (int i = head[b]; i >= 0 && !dup; i = next[i]) dup = dw_of[i] == dw;
          if (dup) continue;
          if (dwords < LANES * 8) { /* at most 64 lanes x 2 addresses x 4 dwords */
            dw_of[dwords] = dw;
            next[dwords] = head[b];
            head[b] = (int16_t)dwords;
          }
          dwords++;
          if (++count[b] > worst) worst = count[b];
        }
      }
    }
    if (!dwords) continue;
    total += worst;
    *ideal += (dwords + banks - 1) / banks;
  }
  return total;
}

static void tm_lds(ctx_t *c, wave_t *w, pending_t *p, const uint32_t *addr0, const uint32_t *addr1, int bytes,
                   uint64_t exec, int write) {
  emu_model *P = c->tm->P;
  cu_t *u = c->tm->cur;
  int ideal;
  int cyc = lds_cycles(P, addr0, addr1, bytes, exec, write, &ideal);
  if (cyc < 1) cyc = 1;
  lds_take_dma(P, u, (double)c->now);
  double start = u->lds_free > (double)c->now ? u->lds_free : (double)c->now;
  u->lds_free = start + cyc;
  P->lds_busy += (uint64_t)cyc;
  P->lds_conflict_cycles += (uint64_t)(cyc > ideal ? cyc - ideal : 0);
  p->done = ceil64(start) + cyc + P->lds_latency;
  note_due(u, p->done);
  (void)w;
}

static void tm_smem(ctx_t *c, wave_t *w, pending_t *p) {
  p->done = c->now + c->tm->P->smem_latency;
  note_due(c->tm->cur, p->done);
  (void)w;
}

static void tm_vmem(ctx_t *c, wave_t *w, pending_t *p, const uint64_t *lane_addr, int bytes, uint64_t exec,
                    int store, int lds_dma) {
  tm_t *T = c->tm;
  emu_model *P = T->P;
  cu_t *u = c->tm->cur;
  uint64_t lines[LANES * 2];
  int nl = 0, active = 0;
  uint64_t lb = (uint64_t)P->line_bytes;
  for (int l = 0; l < LANES; l++) {
    if (!(exec >> l & 1)) continue;
    active++;
    uint64_t first = lane_addr[l] / lb, last = (lane_addr[l] + (uint64_t)bytes - 1) / lb;
    for (uint64_t x = first; x <= last && x < first + 2; x++) {
      int i = nl - 1;
      while (i >= 0 && lines[i] != x) i--; /* newest first: neighbouring lanes share lines */
      if (i < 0) lines[nl++] = x;
    }
  }
  double data = (double)active * bytes;
  double ta_cycles = data / P->ta_bytes_per_cycle;
  if (ta_cycles < nl) ta_cycles = nl; /* one tag lookup per line and cycle */
  if (ta_cycles < 1) ta_cycles = 1;
  double start = u->ta_free > (double)c->now ? u->ta_free : (double)c->now;
  u->ta_free = start + ta_cycles;
  P->ta_busy += (uint64_t)ta_cycles;
  int64_t t0 = ceil64(start), done = t0 + P->l1_latency;
  if (store) {
    double end = serve(&T->l2s[u->xcd], u->j, (double)t0, data);
    double taken = hbm_write(&T->hbm, u->k, end, data);
    if (taken > end) end = taken;
    P->bytes_stored += (uint64_t)data;
    done = ceil64(end) + P->store_latency;
    for (int i = 0; i < nl; i++) { /* write-allocate in L2: later reads of the output hit there */
      int hit;
      cline_t *e = cache_lookup(&T->l2[u->xcd], lines[i], &hit);
      e->last = t0;
      if (!hit || e->avail > done) e->avail = done;
    }
  } else {
    for (int i = 0; i < nl; i++) {
      int64_t a = fetch_line(T, u, lines[i], t0 + (int64_t)(i * ta_cycles / (nl ? nl : 1)));
      if (a > done) done = a;
    }
  }
  if (lds_dma) { /* the data is then written into LDS, occupying it */
    if (u->dma_n == DMA_RING) lds_take_dma(P, u, (double)NEVER);
    int k = (u->dma_head + u->dma_n) % DMA_RING;
    u->dma[k].at = done;
    u->dma[k].cycles = data / P->lds_dma_bytes_per_cycle;
    u->dma_n++;
    done += ceil64(data / P->lds_dma_bytes_per_cycle);
  }
  /* vmcnt counts down in order: an entry completes no earlier than the one before it */
  if (w->vm.n >= 2 && &w->vm.e[w->vm.n - 1] == p && w->vm.e[w->vm.n - 2].done > done) done = w->vm.e[w->vm.n - 2].done;
  p->done = done;
  note_due(u, done);
}

/* ---------------------------------------------------------------- waves, groups, CUs */

static void bind(ctx_t *c, cu_t *u, group_t *g, int wi) {
  c->tm->cur = u;
  c->waves = g->waves;
  c->nwaves = g->nw;
  c->lds = g->lds;
  c->lds_pend = g->lds_pend;
  c->cur_wave = wi;
}

/* Deliver results whose modelled arrival has passed (default mode; strict mode keeps delivering at the
 * s_waitcnt that retires them, the latest legal time, so that early reads are still flagged). */
static void deliver_due(ctx_t *c, cu_t *u, int64_t t) {
  if (t < u->next_due) return;
  int64_t next = NEVER;
  for (int s = 0; s < c->tm->P->wg_slots; s++) {
    group_t *g = &u->slots[s];
    if (!g->active) continue;
    for (int i = 0; i < g->nw; i++) {
      wave_t *w = &g->waves[i];
      bind(c, u, g, i);
      queue_t *q = &w->vm;
      int k = 0;
      if (!c->L->strict)
        while (k < q->n && q->e[k].done <= t) k++;
      if (k) q_retire(c, w, q, q->n - k, 0);
      for (int j = 0; j < q->n; j++)
        if (q->e[j].done > t && q->e[j].done < next) next = q->e[j].done;
      q = &w->lgkm;
      if (!c->L->strict) {
        int j = 0;
        for (int r = 0; r < q->n; r++) {
          if (q->e[r].done <= t) deliver(c, w, &q->e[r]);
          else q->e[j++] = q->e[r];
        }
        q->n = j;
      }
      for (int j = 0; j < q->n; j++)
        if (q->e[j].done > t && q->e[j].done < next) next = q->e[j].done;
    }
  }
  u->next_due = next;
}

/* The cycle at which the k-th smallest completion time among the lgkm entries is reached. */
static int64_t kth_done(const queue_t *q, int k) {
  int64_t d[QMAX];
  for (int i = 0; i < q->n; i++) d[i] = q->e[i].done;
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < q->n; j++)
      if (d[j] < d[i]) { int64_t x = d[i]; d[i] = d[j]; d[j] = x; }
  return d[k - 1];
}

/* Earliest time at which the wave's next instruction can issue (t if now), and why not sooner. */
static int64_t ready_at(ctx_t *c, cu_t *u, wave_t *w, int64_t t, int *reason) {
  emu_launch *L = c->L;
  emu_model *P = c->tm->P;
  if (w->status == W_BARRIER) { *reason = R_BARRIER; return NEVER; }
  if (w->next_issue > t) { *reason = R_ISSUE; return w->next_issue; }
  if (w->pc < 0 || w->pc >= L->nprog) return t; /* step() reports it */
  const insn_t *in = &L->prog[w->pc];
  int op = in->op, cls = OP_TCLASS[op];
  int64_t when = t;
  *reason = R_NONE;
  if (op == OP_S_WAITCNT) {
    int imm = in->imm & 0xFFFF;
    int vm = (imm & 0xF) | ((imm >> 14) & 3) << 4, lgkm = (imm >> 8) & 0xF;
    if (w->vm.n > vm) when = max64(when, w->vm.e[w->vm.n - vm - 1].done);
    if (w->lgkm.n > lgkm) when = max64(when, kth_done(&w->lgkm, w->lgkm.n - lgkm));
    if (when > t) *reason = R_WAITCNT;
    return when;
  }
  if (op == OP_S_ENDPGM) { /* the wave ends once its stores and loads are done */
    for (int i = 0; i < w->vm.n; i++) when = max64(when, w->vm.e[i].done);
    for (int i = 0; i < w->lgkm.n; i++) when = max64(when, w->lgkm.e[i].done);
    if (when > t) *reason = R_WAITCNT;
    return when;
  }
  if (cls == TC_VMEM && w->vm.n == QMAX) { *reason = R_WAITCNT; return max64(t, w->vm.e[0].done); }
  if ((cls == TC_LDS || cls == TC_SMEM) && w->lgkm.n == QMAX) {
    *reason = R_WAITCNT;
    return max64(t, kth_done(&w->lgkm, 1));
  }
  /* register dependencies on earlier ALU/MFMA results */
  int mfma = cls == TC_MFMA, sparse = mfma && OP_MFMA_SPARSE[op];
  for (int s = 0; s < 4; s++) {
    int code = in->src[s];
    if (code < 256 || code >= 256 + NV) continue;
    /* an MFMA reads C from SRC2; an SMFMAC reads half of B's registers as A, one index VGPR as SRC2 and its C
     * from D (below) */
    int n = !mfma ? 1 : s == 2 ? (sparse ? 1 : OP_MFMA_CD_REGS[op]) : OP_MFMA_AB_REGS[op] >> (sparse && s == 0);
    int r0 = code - 256, chain = mfma && s == 2 && !sparse;
    for (int r = r0; r < r0 + n && r < NV; r++) {
      int64_t rd = w->vready[r];
      if (chain && w->vmfma[r]) rd -= P->mfma_writeback; /* accumulation chain */
      if (rd > when) { when = rd; *reason = R_DEPENDENCY; }
    }
  }
  if (sparse && in->dst >= 256)
    for (int r = in->dst - 256; r < in->dst - 256 + OP_MFMA_CD_REGS[op] && r < NV; r++) {
      int64_t rd = w->vready[r] - (w->vmfma[r] ? P->mfma_writeback : 0);
      if (rd > when) { when = rd; *reason = R_DEPENDENCY; }
    }
  int simd = w->simd;
  if (mfma && u->xdl_free[simd] > when) { when = u->xdl_free[simd]; *reason = R_UNIT; }
  if ((cls == TC_VALU || cls == TC_TRANS || cls == TC_VALU64) && u->valu_free[simd] > when) {
    when = u->valu_free[simd];
    *reason = R_UNIT;
  }
  return when;
}

static void group_start(ctx_t *c, tm_t *T, cu_t *u, group_t *g, uint32_t id, int64_t t) {
  emu_launch *L = c->L;
  uint32_t gx = L->grid[0], gy = L->grid[1];
  g->id = id;
  g->wg[0] = id % gx;
  g->wg[1] = (id / gx) % gy;
  g->wg[2] = id / (gx * gy);
  for (uint32_t i = 0; i < c->lds_size; i += 4) memcpy(g->lds + i, &(uint32_t){POISON}, 4);
  if (g->lds_pend) memset(g->lds_pend, 0, c->lds_size);
  for (int i = 0; i < g->nw; i++) {
    wave_t *w = &g->waves[i];
    init_wave(c, w, i, g->wg, T->threads);
    w->simd = (u->waves_placed++) % T->P->simds;
    w->slot = (int)(g - u->slots);
    w->prio = 0;
    w->age = T->age++;
    w->next_issue = t;
    w->last_issue = t;
    w->prev_issue = t;
    w->reason = R_NONE;
    for (int r = 0; r < NV; r++) w->vready[r] = 0;
    memset(w->vmfma, 0, NV);
  }
  g->active = 1;
  g->live = g->nw;
  g->arrived = 0;
  g->start = t;
}

static int group_alloc(ctx_t *c, tm_t *T, group_t *g) {
  g->nw = T->nw_per_group;
  g->waves = calloc((size_t)g->nw, sizeof(wave_t));
  g->lds = malloc(c->lds_size + 16);
  g->lds_pend = c->L->strict ? malloc(c->lds_size + 16) : NULL;
  if (!g->waves || !g->lds || (c->L->strict && !g->lds_pend)) return 0;
  for (int i = 0; i < g->nw; i++) {
    wave_t *w = &g->waves[i];
    w->v = malloc((size_t)NV * LANES * 4);
    w->vready = malloc(NV * sizeof(int64_t));
    w->vmfma = malloc(NV);
    if (!w->v || !w->vready || !w->vmfma) return 0;
  }
  return 1;
}

static void group_free(group_t *g) {
  if (g->waves)
    for (int i = 0; i < g->nw; i++) {
      free(g->waves[i].v);
      free(g->waves[i].vready);
      free(g->waves[i].vmfma);
    }
  free(g->waves);
  free(g->lds);
  free(g->lds_pend);
}

/* A wave considered at time t: the time since it was last considered is a stall, for the reason it could
 * not issue then (none if it issued); `reason` is why it cannot issue now. */
static void account(emu_model *P, wave_t *w, int64_t t, int reason) {
  int64_t gap = t - w->last_issue;
  if (gap > 0) {
    switch (w->reason) {
      case R_NONE: break;
      case R_WAITCNT: P->stall_waitcnt += (uint64_t)gap; break;
      case R_BARRIER: P->stall_barrier += (uint64_t)gap; break;
      case R_DEPENDENCY: P->stall_dependency += (uint64_t)gap; break;
      case R_UNIT: P->stall_unit += (uint64_t)gap; break;
      default: P->stall_issue += (uint64_t)gap; break;
    }
  }
  w->last_issue = t;
  w->reason = reason;
}

/* Issue the wave's next instruction at time t and apply its timing. */
static int issue_one(ctx_t *c, tm_t *T, cu_t *u, group_t *g, int wi, int64_t t) {
  emu_model *P = T->P;
  emu_launch *L = c->L;
  wave_t *w = &g->waves[wi];
  int waited_for = w->reason;
  account(P, w, t, R_NONE);
  const insn_t *in = &L->prog[w->pc];
  int op = in->op, cls = OP_TCLASS[op];
  int vm0 = w->vm.n, lgkm0 = w->lgkm.n;
  c->now = t;
  bind(c, u, g, wi);
  if (step(c, w)) return 1;
  w->next_issue = t + 1;
  int simd = w->simd;
  switch (cls) {
    case TC_MFMA: {
      int cyc = mfma_cycles(in);
      u->xdl_free[simd] = t + cyc;
      P->xdl_busy += (uint64_t)cyc;
      P->mfma_ops++;
      if (in->dst >= 256)
        for (int r = in->dst - 256; r < in->dst - 256 + OP_MFMA_CD_REGS[op] && r < NV; r++) {
          w->vready[r] = t + cyc + P->mfma_writeback;
          w->vmfma[r] = 1;
        }
      break;
    }
    case TC_VALU: case TC_TRANS: case TC_VALU64: {
      int occ = cls == TC_TRANS ? P->trans_cycles : cls == TC_VALU64 ? P->valu64_cycles : P->valu_cycles;
      int lat = cls == TC_TRANS ? P->trans_latency : P->valu_latency;
      u->valu_free[simd] = t + occ;
      P->valu_busy += (uint64_t)occ;
      if (in->dst >= 256 && in->dst < 256 + NV) {
        int n = cls == TC_VALU64 ? 2 : 1;
        for (int r = in->dst - 256; r < in->dst - 256 + n && r < NV; r++) {
          w->vready[r] = t + lat;
          w->vmfma[r] = 0;
        }
      }
      break;
    }
    case TC_BRANCH: w->next_issue = t + P->branch_cycles; break;
    case TC_SALU: w->next_issue = t + P->salu_latency; break;
    default: break;
  }
  if (op == OP_S_NOP) w->next_issue = t + (in->imm & 0xF) + 1;
  if (op == OP_S_SLEEP) w->next_issue = t + 64 * (int64_t)(in->imm & 0x7F);
  if (cls == TC_VMEM || cls == TC_LDS) { /* a load's destination is governed by s_waitcnt, not a scoreboard */
    if (in->dst >= 256 && in->dst < 256 + NV) w->vmfma[in->dst - 256] = 0;
  }
  if (P->trace && g->id < P->trace_count) {
    if (P->trace_n < P->trace_cap) {
      emu_trace_rec *r = &P->trace[P->trace_n];
      int64_t done = t;
      if (w->vm.n > vm0) done = w->vm.e[w->vm.n - 1].done;
      else if (w->lgkm.n > lgkm0) done = w->lgkm.e[w->lgkm.n - 1].done;
      else if ((cls == TC_MFMA || cls == TC_VALU || cls == TC_TRANS || cls == TC_VALU64) && in->dst >= 256 &&
               in->dst < 256 + NV)
        done = w->vready[in->dst - 256];
      r->cycle = t;
      r->done = done;
      r->wg = g->id;
      r->pc = in->pc;
      r->waited = (uint32_t)(t - w->prev_issue);
      r->op = (uint16_t)op;
      r->cu = (uint16_t)u->id;
      r->wave = (uint8_t)wi;
      r->simd = (uint8_t)w->simd;
      r->reason = (uint8_t)waited_for;
      r->pad = 0;
    }
    P->trace_n++;
  }
  w->prev_issue = t;
  if (w->status == W_BARRIER) {
    g->arrived++;
    if (g->arrived == g->live) { /* the last wave arrived: release all */
      for (int i = 0; i < g->nw; i++)
        if (g->waves[i].status == W_BARRIER) {
          g->waves[i].status = W_RUN;
          g->waves[i].next_issue = t + P->barrier_latency;
        }
      g->arrived = 0;
    }
  } else if (w->status == W_DONE) {
    g->live--;
    if (g->arrived && g->arrived == g->live) { /* waves still at a barrier pass it once the rest ended */
      for (int i = 0; i < g->nw; i++)
        if (g->waves[i].status == W_BARRIER) {
          g->waves[i].status = W_RUN;
          g->waves[i].next_issue = t + P->barrier_latency;
        }
      g->arrived = 0;
    }
    if (!g->live) {
      int64_t end = t; /* its waves ended only once their loads and stores were done (ready_at) */
      g->active = 0;
      g->start = end; /* the slot is free from then on */
      if (g->round < 3 && end > u->round_end[g->round]) u->round_end[g->round] = end;
      if (end > u->end) u->end = end;
      P->wg_run++;
    }
  }
  return 0;
}

/* One cycle of CU u: start queued workgroups in free slots, deliver arrived data, issue on one SIMD. */
static int cu_cycle(ctx_t *c, tm_t *T, cu_t *u, int64_t *wake) {
  emu_model *P = T->P;
  int64_t t = u->now;
  int busy = 0;
  for (int s = 0; s < P->wg_slots; s++) {
    group_t *g = &u->slots[s];
    if (!g->active && u->qpos < u->qn) {
      int64_t at = g->start + P->wg_launch_cycles; /* start: when the slot was freed (0 at first) */
      if (at <= t) {
        if (!g->waves && !group_alloc(c, T, g))
          return fail(c, E_INVALID, 0, "host out of memory for the timing model");
        if (check_budget(c)) return c->L->err;
        g->round = u->qpos / P->wg_slots;
        group_start(c, T, u, g, u->queue[u->qpos++], t);
      } else if (at < *wake) {
        *wake = at;
      }
    }
    if (g->active) busy = 1;
  }
  if (!busy) {
    if (u->qpos >= u->qn) u->done = 1;
    return 0;
  }
  deliver_due(c, u, t);
  int simd = (int)(t % P->simds);
  /* candidates on this SIMD by priority, then age */
  struct { int s, i, prio; uint64_t age; } cand[MAX_SLOTS * 16];
  int n = 0;
  for (int s = 0; s < P->wg_slots; s++) {
    group_t *g = &u->slots[s];
    if (!g->active) continue;
    for (int i = 0; i < g->nw; i++) {
      wave_t *w = &g->waves[i];
      if (w->simd != simd || w->status == W_DONE) continue;
      int k = n++;
      while (k > 0 && (cand[k - 1].prio < w->prio || (cand[k - 1].prio == w->prio && cand[k - 1].age > w->age))) {
        cand[k] = cand[k - 1];
        k--;
      }
      cand[k].s = s, cand[k].i = i, cand[k].prio = w->prio, cand[k].age = w->age;
    }
  }
  unsigned used = 0;
  int issued = 0;
  for (int k = 0; k < n; k++) {
    group_t *g = &u->slots[cand[k].s];
    wave_t *w = &g->waves[cand[k].i];
    if (!g->active || w->status == W_DONE) continue;
    int reason;
    int64_t at = ready_at(c, u, w, t, &reason);
    if (at > t) {
      account(c->tm->P, w, t, reason);
      if (at < *wake) *wake = at;
      continue;
    }
    int op = c->L->prog[w->pc].op, cls = OP_TCLASS[op];
    if (cls == TC_UNTIMED) {
      bind(c, u, g, cand[k].i);
      memcpy(c->L->err_wg, g->wg, sizeof g->wg);
      return fail(c, E_UNIMPL, 0, "the timing model has no figure for this instruction (opcode %d): it cannot "
                  "time this launch; run without HKRT_EMU_MODEL", op);
    }
    int port = (cls == TC_TRANS || cls == TC_VALU64 || cls == TC_MFMA) ? TC_VALU : cls; /* one VALU port */
    if (cls != TC_INTERNAL && (used >> port & 1)) {
      account(c->tm->P, w, t, R_ISSUE);
      if (t + 1 < *wake) *wake = t + 1;
      continue;
    }
    used |= 1u << port;
    if (issue_one(c, T, u, g, cand[k].i, t)) {
      memcpy(c->L->err_wg, g->wg, sizeof g->wg);
      return c->L->err;
    }
    issued++;
    if (!(c->L->insn_count & 4095) && check_budget(c)) return c->L->err;
    if (c->L->insn_count > c->L->max_insns)
      return fail(c, E_LIMIT, 0, "instruction limit of %llu wave-instructions reached (an endless loop?)",
                  (unsigned long long)c->L->max_insns);
  }
  if (issued) *wake = t + 1;
  return 0;
}

static int cu_advance(ctx_t *c, tm_t *T, cu_t *u, int64_t until) {
  while (!u->done && u->now < until) {
    int64_t wake = NEVER;
    int rc = cu_cycle(c, T, u, &wake);
    if (rc) return rc;
    if (u->done) break;
    /* after a whole round of SIMDs without an issue, skip to the earliest time anything can issue */
    if (wake > u->now + 1) {
      u->idle++;
      if (wake < u->idle_wake) u->idle_wake = wake;
    } else {
      u->idle = 0;
      u->idle_wake = NEVER;
    }
    if (u->idle >= T->P->simds) {
      if (u->idle_wake == NEVER) return fail(c, E_DEADLOCK, 0, "no wave can ever issue again (barrier deadlock?)");
      u->now = max64(u->now + 1, u->idle_wake);
      u->idle = 0;
      u->idle_wake = NEVER;
    } else {
      u->now++;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- the launch */

static int tm_run(ctx_t *c) {
  emu_launch *L = c->L;
  emu_model *P = L->model;
  tm_t T;
  memset(&T, 0, sizeof T);
  T.P = P;
  c->tm = &T;
  T.threads = L->block[0] * L->block[1] * L->block[2];
  T.nw_per_group = (int)((T.threads + LANES - 1) / LANES);
  if (P->wg_slots < 1) P->wg_slots = 1;
  if (P->wg_slots > MAX_SLOTS) P->wg_slots = MAX_SLOTS;
  uint64_t nwg = (uint64_t)L->grid[0] * L->grid[1] * L->grid[2];
  int ncu_chip = P->xcds * P->cus_per_xcd;
  int rc = 0;
  /* which CUs are simulated: all, or (sampling) those of XCD 0; MALL and HBM are then shared by one XCD's
   * share of the chip */
  int sample = P->sample && nwg > (uint64_t)P->xcds;
  T.ncu = sample ? P->cus_per_xcd : ncu_chip;
  T.cus = calloc((size_t)T.ncu, sizeof(cu_t));
  T.l2 = calloc((size_t)P->xcds, sizeof(cache_t));
  T.l2s = calloc((size_t)P->xcds, sizeof(server_t));
  int ok = T.cus && T.l2 && T.l2s && cache_init(&T.mall, P->mall_lines, P->mall_ways);
  for (int x = 0; ok && x < (sample ? 1 : P->xcds); x++) {
    ok = cache_init(&T.l2[x], P->l2_lines, P->l2_ways);
    ok = ok && server_init(&T.l2s[x], P->l2_bytes_per_cycle, P->cus_per_xcd);
  }
  double share = sample ? 1.0 / P->xcds : 1.0;
  ok = ok && server_init(&T.malls, P->mall_bytes_per_cycle * share, T.ncu) &&
       server_init(&T.hbm.s, P->hbm_bytes_per_cycle * share, T.ncu);
  T.hbm.cap = (double)P->l2_lines * P->line_bytes * (sample ? 1 : P->xcds); /* dirty lines of the L2s */
  uint64_t rounds_total = 0;
  for (int k = 0; ok && k < T.ncu; k++) {
    cu_t *u = &T.cus[k];
    int xcd = sample ? 0 : k / P->cus_per_xcd, j = sample ? k : k % P->cus_per_xcd;
    u->id = xcd * P->cus_per_xcd + j;
    u->xcd = xcd;
    u->k = k;
    u->j = j;
    u->next_due = NEVER;
    u->idle_wake = NEVER;
    ok = cache_init(&u->l1, P->l1_lines, P->l1_ways);
    /* round robin over XCDs, then over the CUs of the XCD: workgroup i runs on XCD i % xcds, CU
     * (i / xcds) % cus_per_xcd, so CU (x, j) gets i = x + xcds * j (mod the CU count) */
    uint64_t first = (uint64_t)xcd + (uint64_t)P->xcds * j;
    uint64_t count = first < nwg ? (nwg - first + ncu_chip - 1) / ncu_chip : 0;
    uint64_t rounds = u->rounds = (count + P->wg_slots - 1) / P->wg_slots;
    if (rounds > rounds_total) rounds_total = rounds;
    uint64_t keep = count;
    /* sampling keeps the first two rounds (the start, then one in steady state) and the last one */
    if (sample && rounds > 3) keep = 2 * P->wg_slots + (count - (uint64_t)P->wg_slots * (rounds - 1));
    u->queue = malloc((keep ? keep : 1) * sizeof(uint32_t));
    if (!u->queue) { ok = 0; break; }
    for (uint64_t q = 0; q < keep; q++) {
      uint64_t idx = q < 2 * (uint64_t)P->wg_slots || keep == count ? q : count - (keep - q);
      u->queue[q] = (uint32_t)(first + idx * ncu_chip);
    }
    u->qn = (int)keep;
    u->done = keep == 0;
  }
  if (!ok) rc = fail(c, E_INVALID, 0, "host out of memory for the timing model");
  /* each window starts at another CU, so that no CU always meets the shared servers last */
  for (int64_t until = WINDOW, first = 0; !rc; until += WINDOW, first = (first + 1) % (T.ncu ? T.ncu : 1)) {
    int alive = 0;
    for (int i = 0; i < T.ncu && !rc; i++) {
      cu_t *u = &T.cus[(first + i) % T.ncu];
      if (u->done) continue;
      rc = cu_advance(c, &T, u, until);
      alive += !u->done;
    }
    if (!alive) break;
  }
  if (rc && c->waves) L->err_insn = c->waves[c->cur_wave].pc;
  if (!rc) {
    /* the kernel ends with its slowest CU; with sampling, each skipped round is as long as the second */
    uint64_t worst = 0, round = 0, tail = 0;
    for (int k = 0; k < T.ncu; k++) {
      cu_t *u = &T.cus[k];
      uint64_t rounds = u->rounds, end = (uint64_t)u->end;
      uint64_t steady = (uint64_t)(rounds > 1 ? u->round_end[1] - u->round_end[0] : u->round_end[0]);
      if (sample && rounds > 3) end += (rounds - 3) * steady;
      if (end > worst) worst = end;
      if (steady > round) round = steady;
      int last = rounds > 3 && sample ? 2 : (int)(rounds < 3 ? rounds : 3) - 1;
      if (last > 0 && (uint64_t)(u->end - u->round_end[last - 1]) > tail) tail = (uint64_t)(u->end - u->round_end[last - 1]);
      P->cu_cycles += (uint64_t)u->end;
    }
    P->cycles = worst;
    P->round_cycles = round;
    P->tail_cycles = rounds_total > 1 ? tail : 0;
  }
  for (int k = 0; T.cus && k < T.ncu; k++) {
    lds_take_dma(P, &T.cus[k], (double)NEVER);
    for (int s = 0; s < MAX_SLOTS; s++) group_free(&T.cus[k].slots[s]);
    free(T.cus[k].queue);
    free(T.cus[k].l1.e);
  }
  for (int x = 0; T.l2 && x < P->xcds; x++) free(T.l2[x].e);
  for (int x = 0; T.l2s && x < P->xcds; x++) server_free(&T.l2s[x]);
  server_free(&T.malls);
  server_free(&T.hbm.s);
  free(T.l2);
  free(T.l2s);
  free(T.mall.e);
  free(T.cus);
  c->tm = NULL;
  c->waves = NULL;
  c->lds = NULL;
  c->lds_pend = NULL;
  return rc;
}
