/*
 * Instructions retired between two markers, for qemu-user TCG plugins (QEMU_PLUGIN_VERSION 1,
 * QEMU 7.2 and later).
 *
 *   qemu-aarch64 -cpu cortex-a72 -plugin insn_count.so,out=FILE ... guest
 *
 * The guest marks a span by calling close() on two file descriptors no process has open:
 * close(ICOUNT_MAGIC) starts it, close(ICOUNT_MAGIC + 1) ends it and appends one line to FILE:
 *
 *   span <n> total <i> simd_fp <i> ldst <i> fmla <i> dot <i> fp16 <i>
 *
 * (the counts since the matching start, all threads of the guest together; n counts from 0).
 * With prof=FILE2 as well, each span also appends to FILE2 the instructions executed per
 * translation block start address ("span <n>" then "<hex address> <count>" lines), for a
 * per-function profile once the addresses are mapped to symbols.
 * close() fails with EBADF in the guest, nothing else happens. Counting is per translation
 * block: each block adds its instruction count (and its count per class) when it starts, with
 * inline adds, so the emulation slows down little. A block left half-way through by a fault is
 * counted whole; in user mode that is only a signal, which these runs do not raise.
 *
 * Classes (AArch64 encodings, Arm ARM section C4.1):
 *   simd_fp  data processing, SIMD and floating point (op0 = x111): NEON and scalar FP arithmetic
 *   ldst     loads and stores of any kind (op0 = x1x0)
 *   fmla     FMLA vector and by element, single and double precision (the float GEMM inner loop)
 *   dot      SDOT/UDOT vector and by element (ARMv8.2 dot product: the int8 GEMM inner loop)
 *   fp16     half-precision vector arithmetic (three-same FP16, FMLA/FMLS/FMUL by element on .h)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define ICOUNT_MAGIC 0x1C07A000u
#define AARCH64_NR_CLOSE 57

enum { TOTAL, SIMD_FP, LDST, FMLA, DOT, FP16, NCLASS };
static const char *class_name[NCLASS] = {"total", "simd_fp", "ldst", "fmla", "dot", "fp16"};

static uint64_t count[NCLASS];
static uint64_t start[NCLASS];
static uint64_t spans;
static int open_span;
static FILE *out;

/* per translation block, for prof= */
typedef struct {
    uint64_t vaddr;
    uint64_t insns; /* executed, summed by an inline add */
    uint64_t start;
} Block;
static Block **blocks;
static size_t n_blocks, cap_blocks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *prof;

static void classify(uint32_t insn, uint64_t *n)
{
    n[TOTAL]++;
    if ((insn & 0x0E000000u) == 0x0E000000u) {
        n[SIMD_FP]++;
    }
    if ((insn & 0x0A000000u) == 0x08000000u) {
        n[LDST]++;
    }
    if ((insn & 0xBFA0FC00u) == 0x0E20CC00u || (insn & 0xBF80F400u) == 0x0F801000u) {
        n[FMLA]++;
    }
    if ((insn & 0x9FE0FC00u) == 0x0E809400u || (insn & 0x9FC0F400u) == 0x0F80E000u) {
        n[DOT]++;
    }
    if ((insn & 0x9F60C400u) == 0x0E400400u || (insn & 0x9FC03400u) == 0x0F001000u) {
        n[FP16]++;
    }
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t n[NCLASS] = {0};
    size_t insns = qemu_plugin_tb_n_insns(tb);

    for (size_t i = 0; i < insns; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t word = 0;
        if (qemu_plugin_insn_size(insn) == 4) {
            memcpy(&word, qemu_plugin_insn_data(insn), 4);
        }
        classify(word, n);
    }
    for (int c = 0; c < NCLASS; c++) {
        if (n[c]) {
            qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &count[c],
                                                     n[c]);
        }
    }
    if (prof) {
        Block *b = calloc(1, sizeof(Block));
        b->vaddr = qemu_plugin_tb_vaddr(tb);
        pthread_mutex_lock(&lock);
        if (n_blocks == cap_blocks) {
            cap_blocks = cap_blocks ? 2 * cap_blocks : 4096;
            blocks = realloc(blocks, cap_blocks * sizeof(Block *));
        }
        blocks[n_blocks++] = b;
        pthread_mutex_unlock(&lock);
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->insns,
                                                 n[TOTAL]);
    }
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    uint32_t fd = (uint32_t)a1;

    if (num != AARCH64_NR_CLOSE || (fd != ICOUNT_MAGIC && fd != ICOUNT_MAGIC + 1)) {
        return;
    }
    if (fd == ICOUNT_MAGIC) {
        memcpy(start, count, sizeof(start));
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < n_blocks; i++) {
            blocks[i]->start = blocks[i]->insns;
        }
        pthread_mutex_unlock(&lock);
        open_span = 1;
        return;
    }
    if (!open_span) {
        return;
    }
    fprintf(out, "span %" PRIu64, spans++);
    for (int c = 0; c < NCLASS; c++) {
        fprintf(out, " %s %" PRIu64, class_name[c], count[c] - start[c]);
    }
    fputc('\n', out);
    fflush(out);
    if (prof) {
        pthread_mutex_lock(&lock);
        fprintf(prof, "span %" PRIu64 "\n", spans - 1);
        for (size_t i = 0; i < n_blocks; i++) {
            uint64_t d = blocks[i]->insns - blocks[i]->start;
            if (d) {
                fprintf(prof, "%" PRIx64 " %" PRIu64 "\n", blocks[i]->vaddr, d);
            }
        }
        pthread_mutex_unlock(&lock);
        fflush(prof);
    }
    open_span = 0;
}

static void plugin_exit(qemu_plugin_id_t id, void *p)
{
    fprintf(out, "exit total %" PRIu64 "\n", count[TOTAL]);
    fclose(out);
    if (prof) {
        fclose(prof);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    const char *prof_path = NULL;

    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "prof=", 5) == 0) {
            prof_path = argv[i] + 5;
        }
    }
    if (!path) {
        fprintf(stderr, "insn_count: give out=FILE\n");
        return 1;
    }
    out = fopen(path, "w");
    if (!out) {
        perror(path);
        return 1;
    }
    if (prof_path) {
        prof = fopen(prof_path, "w");
        if (!prof) {
            perror(prof_path);
            return 1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
