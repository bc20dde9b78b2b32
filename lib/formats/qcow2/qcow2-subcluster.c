/* Extended L2 entries: what each subcluster of a cluster reads as, from
 * the entry's standard part and its subcluster bitmap (qcow2.txt,
 * "Extended L2 Entries"). Pure functions: the callers hold the lock and
 * signal corruption for the bitmaps refused here. */
#include "qcow2.h"

uint64_t qcow2_sc_bits(unsigned first, unsigned n)
{
    if (n == 0) {
        return 0;
    }
    uint64_t ones = n >= 64 ? ~0ull : ((1ull << n) - 1);
    return (ones << first) & QCOW2_EXTL2_ALL_ALLOC;
}

bool qcow2_sc_has_data(enum qcow2_ctype t)
{
    return t == QCOW2_C_NORMAL || t == QCOW2_C_COMPRESSED;
}

/* The type of subcluster SC alone (the bitmap already validated). */
static enum qcow2_ctype sc_type(enum qcow2_ctype ct, uint64_t bm,
                                unsigned sc)
{
    bool alloc = (bm >> sc) & 1, zero = (bm >> (32 + sc)) & 1;

    if (ct == QCOW2_C_COMPRESSED) {
        return ct;
    }
    if (ct == QCOW2_C_NORMAL) {
        return zero ? QCOW2_C_ZERO_ALLOC
                    : alloc ? QCOW2_C_NORMAL : QCOW2_C_UNALLOC_ALLOC;
    }
    return zero ? QCOW2_C_ZERO_PLAIN : QCOW2_C_UNALLOC;
}

bool qcow2_sc_range(const struct qcow2_state *s, enum qcow2_ctype ct,
                    uint64_t bm, unsigned sc, enum qcow2_ctype *t,
                    unsigned *n)
{
    if (!s->ext_l2) {
        *t = ct;
        *n = 1;
        return true;
    }
    /* As QEMU: the whole bitmap is judged, not just the subclusters
     * asked about, so that one entry always reads the same way. */
    switch (ct) {
    case QCOW2_C_COMPRESSED:
        if (bm) {
            return false;
        }
        break;
    case QCOW2_C_NORMAL:
        if ((bm >> 32) & bm & QCOW2_EXTL2_ALL_ALLOC) {
            return false;
        }
        break;
    default:
        if (bm & QCOW2_EXTL2_ALL_ALLOC) {
            return false;
        }
        break;
    }
    *t = sc_type(ct, bm, sc);
    unsigned k = sc + 1;
    while (k < QCOW2_EXTL2_SUBCLUSTERS && sc_type(ct, bm, k) == *t) {
        k++;
    }
    *n = k - sc;
    return true;
}
