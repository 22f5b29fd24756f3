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
  int32_t strict, seeded;
  uint64_t seed, max_insns;
  /* results */
  uint64_t insn_count;
  int32_t err, err_insn, err_wave;
  uint32_t err_wg[3];
  uint64_t err_addr;
  char err_msg[256];
} emu_launch;

int emu_run(emu_launch *L);
int emu_run_wave_state(emu_launch *L, uint32_t *s, uint32_t *v, int32_t *scc, uint8_t *lds);
