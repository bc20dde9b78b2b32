/* Progress for long operations (-p): where stdout is a terminal, a bar on
 * stderr; where it is not (a script reading it), qemu-img's lines,
 * "    (NN.NN/100%)\r" on stdout; with --progress=json, one JSON object
 * per line on stdout. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* qemu-img prints a line when the figure moved by more than this. */
#define TEXT_MIN_STEP 1.0

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_text(struct progress *p, double percent)
{
    printf("    (%3.2f/100%%)\r", percent);
    fflush(stdout);
    p->last_percent = percent;
}

void progress_init(struct progress *p, enum progress_mode mode)
{
    p->mode = mode;
    if (mode == PROGRESS_BAR && !isatty(STDOUT_FILENO)) {
        p->mode = PROGRESS_TEXT;
    } else if (mode == PROGRESS_BAR && !isatty(STDERR_FILENO)) {
        p->mode = PROGRESS_NONE;
    }
    p->start = p->last = now();
    p->last_permille = -1;
    if (p->mode == PROGRESS_TEXT) {
        print_text(p, 0);
    }
}

void progress_update(void *opaque, uint64_t done, uint64_t total)
{
    struct progress *p = opaque;
    double t = now();
    int permille = total ? (int)((double)done * 1000 / (double)total) : 1000;
    double rate = t > p->start ? (double)done / (t - p->start) : 0;

    if (p->mode == PROGRESS_TEXT) {
        double percent = total ? (double)done * 100 / (double)total : 100;
        if (percent > p->last_percent + TEXT_MIN_STEP ||
            (done == total && p->last_percent < 100)) {
            print_text(p, percent);
        }
        return;
    }
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
    char rbuf[32], eta[32] = "";
    int width = 40, filled = permille * width / 1000;
    format_size((uint64_t)rate, rbuf, sizeof rbuf);
    if (rate > 0 && done < total) {
        unsigned s = (unsigned)((double)(total - done) / rate + 0.5);
        snprintf(eta, sizeof eta, "ETA %u:%02u:%02u", s / 3600,
                 s / 60 % 60, s % 60);
    }
    fprintf(stderr, "\r[");
    for (int i = 0; i < width; i++) {
        fputc(i < filled ? '#' : ' ', stderr);
    }
    /* Holes and zero runs count as done without being copied, so the
     * rate is of the guest disk covered, not of bytes written. */
    fprintf(stderr, "] %5.1f%%  %s/s %-14s", permille / 10.0, rbuf, eta);
    fflush(stderr);
}

void progress_finish(struct progress *p)
{
    if (p->mode == PROGRESS_BAR) {
        fputc('\n', stderr);
    } else if (p->mode == PROGRESS_TEXT) {
        /* qemu-img ends its lines with a newline once the command has
         * said what it had to say. */
        putchar('\n');
        fflush(stdout);
    }
}
