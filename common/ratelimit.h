/* A byte rate limit kept over time slices, as QEMU's ratelimit.h keeps it
 * for block jobs and qemu-img convert -r: within a slice up to the
 * slice's quota goes at once, and the caller then waits until the bytes
 * dispatched are due (a burst may run ahead by one slice's quota). Times
 * are in nanoseconds of a monotonic clock, passed in so that the
 * arithmetic is testable. */
#ifndef VIMG_RATELIMIT_H
#define VIMG_RATELIMIT_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

#define RATELIMIT_SLICE_NS 100000000ull

struct ratelimit {
    uint64_t rate;        /* bytes per second; 0: no limit */
    uint64_t slice_start, slice_end, dispatched;
};

/* Account N more bytes at time NOW; how long to wait before sending
 * them (QEMU's ratelimit_calculate_delay). */
static inline uint64_t ratelimit_delay(struct ratelimit *rl, uint64_t n,
                                       uint64_t now)
{
    if (!rl->rate) {
        return 0;
    }
    uint64_t quota = (uint64_t)((double)rl->rate * RATELIMIT_SLICE_NS /
                                1e9);
    quota = quota ? quota : 1;
    if (rl->slice_end < now) {
        rl->slice_start = now;
        rl->slice_end = now + RATELIMIT_SLICE_NS;
        rl->dispatched = 0;
    }
    rl->dispatched += n;
    if (rl->dispatched < quota) {
        return 0;
    }
    rl->slice_end = rl->slice_start +
                    (uint64_t)((double)rl->dispatched / (double)quota *
                               RATELIMIT_SLICE_NS);
    return rl->slice_end > now ? rl->slice_end - now : 0;
}

/* The monotonic clock, in nanoseconds. */
static inline uint64_t ratelimit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep NS nanoseconds, signals or not. */
static inline void ratelimit_sleep(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ull),
                           (long)(ns % 1000000000ull) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

#endif
