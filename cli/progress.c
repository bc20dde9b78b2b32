/* Progress for long operations: a bar on stderr when it is a terminal, or
 * one JSON object per line on stdout for programs (--progress=json). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, enum progress_mode mode)
{
    p->mode = mode;
    if (mode == PROGRESS_BAR && !isatty(STDERR_FILENO)) {
        p->mode = PROGRESS_NONE; /* qemu-img's -p garbles logs; we don't */
    }
    p->start = p->last = now();
    p->last_permille = -1;
}

void progress_update(void *opaque, uint64_t done, uint64_t total)
{
    struct progress *p = opaque;
    double t = now();
    int permille = total ? (int)((double)done * 1000 / (double)total) : 1000;
    double rate = t > p->start ? (double)done / (t - p->start) : 0;

    if (p->mode == PROGRESS_NONE ||
        (done < total && (permille == p->last_permille || t - p->last < 0.1))) {
        return;
    }
    p->last = t;
    p->last_permille = permille;
    if (p->mode == PROGRESS_JSON) {
        printf("{\"done\": %llu, \"total\": %llu, \"percent\": %.1f, "
               "\"bytes-per-second\": %.0f}\n",
               (unsigned long long)done, (unsigned long long)total,
               permille / 10.0, rate);
        fflush(stdout);
        return;
    }
    char rbuf[32];
    int width = 40, filled = permille * width / 1000;
    format_size((uint64_t)rate, rbuf, sizeof rbuf);
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++) {
        fputc(i < filled ? '#' : ' ', stderr);
    }
    fprintf(stderr, "] %5.1f%%  %s/s ", permille / 10.0, rbuf);
    fflush(stderr);
}

void progress_finish(struct progress *p)
{
    if (p->mode == PROGRESS_BAR) {
        fputc('\n', stderr);
    }
}
