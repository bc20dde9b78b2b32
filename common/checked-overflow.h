/* Overflow-checked arithmetic on unsigned 64-bit values: sizes and offsets
 * read from disk go through these before use. Each returns true when the
 * result overflowed (and then *R is unspecified). */
#ifndef VIMG_CHECKED_OVERFLOW_H
#define VIMG_CHECKED_OVERFLOW_H

#include <stdbool.h>
#include <stdint.h>

#define CHECKED_ADD(a, b, r) __builtin_add_overflow((a), (b), (r))
#define CHECKED_SUB(a, b, r) __builtin_sub_overflow((a), (b), (r))
#define CHECKED_MUL(a, b, r) __builtin_mul_overflow((a), (b), (r))

/* True when [OFFSET, OFFSET+LEN) does not fit inside [0, LIMIT). */
static inline bool range_outside(uint64_t offset, uint64_t len,
                                 uint64_t limit)
{
    uint64_t end;
    return CHECKED_ADD(offset, len, &end) || end > limit;
}

#endif
