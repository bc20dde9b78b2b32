/* Rounding for power-of-two and general alignments. */
#ifndef VIMG_ROUNDING_H
#define VIMG_ROUNDING_H

#include <stdbool.h>
#include <stdint.h>

#define ROUND_DOWN(n, a) ((n) / (a) * (a))
/* Callers check for overflow first when N may be near UINT64_MAX. */
#define ROUND_UP(n, a) (((n) + (a) - 1) / (a) * (a))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define IS_ALIGNED(n, a) ((n) % (a) == 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline bool is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

#endif
