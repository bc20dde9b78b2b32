/* vimg bench: qemu-img bench's requests, options and two lines of output.
 * qemu-img keeps DEPTH requests in flight with coroutines; here DEPTH
 * threads each issue one request at a time through the public API, under
 * the same bookkeeping (which offset comes next, when to flush). */
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"

/* Threads are capped; more in flight than this measures nothing new. */
#define MAX_THREADS 256

struct bench {
    struct vimg_image *img;
    uint64_t image_size, bufsize, step, offset;
    int nrreq;                 /* depth */
    int64_t n;                 /* requests not yet completed */
    int in_flight;
    bool write, drain, draining;
    int flush_interval;
    int pattern;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool failed;
};

/* Record the first failure (the library's message) and stop everyone.
 * Called with the lock held. */
static void bench_fail(struct bench *b, const char *what)
{
    if (!b->failed) {
        const char *m = vimg_get_error();
        fail("%s: %s", what, m ? m : "unknown error");
        b->failed = true;
    }
    pthread_cond_broadcast(&b->cond);
}

/* A flush, with the lock dropped while it runs. */
static void bench_flush(struct bench *b)
{
    pthread_mutex_unlock(&b->lock);
    int r = vimg_flush(b->img);
    pthread_mutex_lock(&b->lock);
    if (r < 0) {
        bench_fail(b, "Failed flush request");
    }
}

static void *bench_worker(void *arg)
{
    struct bench *b = arg;
    char *buf = NULL;

    if (posix_memalign((void **)&buf, 4096, b->bufsize ? b->bufsize : 1)) {
        pthread_mutex_lock(&b->lock);
        fail("out of memory");
        b->failed = true;
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->lock);
        return NULL;
    }
    memset(buf, b->pattern, b->bufsize);
    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->failed && b->n > 0 &&
               !(b->n > b->in_flight && b->in_flight < b->nrreq &&
                 !b->draining)) {
            pthread_cond_wait(&b->cond, &b->lock);
        }
        if (b->failed || b->n == 0) {
            break;
        }
        /* qemu-img's offsets: from -o, STEP apart, wrapping before the
         * last BUFSIZE bytes of the image. */
        uint64_t offset = b->offset;
        b->in_flight++;
        b->offset += b->step;
        if (b->image_size <= b->bufsize) {
            b->offset = 0;
        } else {
            b->offset %= b->image_size - b->bufsize;
        }
        pthread_mutex_unlock(&b->lock);
        int r = b->write ? vimg_pwrite(b->img, buf, b->bufsize, offset, 0)
                         : vimg_pread(b->img, buf, b->bufsize, offset);
        pthread_mutex_lock(&b->lock);
        if (r < 0) {
            bench_fail(b, "Failed request");
            break;
        }
        int64_t remaining = b->n - b->in_flight;
        b->n--;
        b->in_flight--;
        /* Time to flush: with draining, only once every request in flight
         * is done (each completion until then sees the same REMAINING),
         * and nothing new starts until the flush is. */
        if (b->flush_interval && remaining % b->flush_interval == 0) {
            if (!b->drain) {
                bench_flush(b);
            } else if (b->in_flight == 0) {
                b->draining = true;
                bench_flush(b);
                b->draining = false;
            } else {
                b->draining = true;
            }
        }
        pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->lock);
    free(buf);
    return NULL;
}

/* qemu-img's parsers for bench: a C number in any base (-c, -d,
 * --pattern, --flush-interval) no larger than MAX. */
static bool parse_count(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!*s || *s == '-') {
        return false;
    }
    *out = strtoul(s, &end, 0);
    return !*end && *out <= max;
}

static int parse_int_size(const char *what, const char *s, uint64_t *out)
{
    if (vimg_parse_size(s, out) < 0) {
        return fail("Invalid %s specified. You may use k, M, G, T, P or E "
                    "suffixes for kilobytes, megabytes, gigabytes, "
                    "terabytes, petabytes and exabytes.", what);
    }
    if (*out > INT32_MAX) {
        return fail("Invalid %s specified. Must be between 0 and "
                    "2147483647.", what);
    }
    return 0;
}

static int run(int argc, char **argv)
{
    enum { OPT_PATTERN = 256, OPT_FLUSH, OPT_NO_DRAIN };
    static const struct option longopts[] = {
        { "pattern", required_argument, NULL, OPT_PATTERN },
        { "flush-interval", required_argument, NULL, OPT_FLUSH },
        { "no-drain", no_argument, NULL, OPT_NO_DRAIN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    struct bench b = { .bufsize = 4096, .nrreq = 64, .n = 75000,
                       .drain = true };
    const char *fmt = NULL;
    unsigned flags = 0;
    bool native = false;
    uint64_t step = 0;
    unsigned long v;
    int c;

    while ((c = getopt_long(argc, argv, "c:d:f:ni:o:qs:S:t:wU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!parse_count(optarg, INT32_MAX, &v)) {
                return fail("Invalid request count specified");
            }
            b.n = (int64_t)v;
            break;
        case 'd':
            /* qemu-img takes 0 and then waits forever: refused here. */
            if (!parse_count(optarg, INT32_MAX, &v) || v == 0) {
                return fail("Invalid queue depth specified");
            }
            b.nrreq = (int)v;
            break;
        case 'f': fmt = optarg; break;
        case 'n': native = true; break;
        case 'i':
            /* The AIO engine: vimg has one (threads), so only the checks. */
            if (strcmp(optarg, "threads") && strcmp(optarg, "native") &&
                strcmp(optarg, "io_uring")) {
                return fail("Invalid aio option: %s", optarg);
            }
            native = !strcmp(optarg, "native");
            break;
        case 'o':
            if (vimg_parse_size(optarg, &b.offset) < 0) {
                return fail("Invalid offset specified. You may use k, M, G, "
                            "T, P or E suffixes for kilobytes, megabytes, "
                            "gigabytes, terabytes, petabytes and "
                            "exabytes.");
            }
            break;
        case 'q': break; /* qemu-img bench prints its lines anyway */
        case 's':
            if (parse_int_size("buffer size", optarg, &b.bufsize)) {
                return 1;
            }
            break;
        case 'S':
            if (parse_int_size("step_size", optarg, &step)) {
                return 1;
            }
            break;
        case 't':
            if (parse_cache(optarg, &flags)) {
                return 1;
            }
            break;
        case 'w': b.write = true; break;
        case 'U': flags |= VIMG_OPEN_FORCE_SHARE; break;
        case OPT_PATTERN:
            if (!parse_count(optarg, 0xff, &v)) {
                return fail("Invalid pattern byte specified");
            }
            b.pattern = (int)v;
            break;
        case OPT_FLUSH:
            if (!parse_count(optarg, INT32_MAX, &v)) {
                return fail("Invalid flush interval specified");
            }
            b.flush_interval = (int)v;
            break;
        case OPT_NO_DRAIN: b.drain = false; break;
        default: return 1; /* getopt named the problem */
        }
    }
    if (argc - optind != 1) {
        return usage(&cmd_bench, true);
    }
    if (native && !(flags & VIMG_OPEN_NOCACHE)) {
        return fail("Could not open '%s': aio=native was specified, but it "
                    "requires cache.direct=on, which was not specified.",
                    argv[optind]);
    }
    if (!b.write && b.flush_interval) {
        return fail("--flush-interval is only available in write tests");
    }
    if (b.flush_interval && b.flush_interval < b.nrreq) {
        return fail("Flush interval can't be smaller than depth");
    }
    b.img = open_image(argv[optind], fmt,
                       flags | (b.write ? VIMG_OPEN_RDWR : 0));
    if (!b.img) {
        return 1;
    }
    b.image_size = (uint64_t)vimg_get_size(b.img);
    b.step = step ? step : b.bufsize;
    printf("Sending %d %s requests, %d bytes each, %d in parallel "
           "(starting at offset %llu, step size %d)\n", (int)b.n,
           b.write ? "write" : "read", (int)b.bufsize, b.nrreq,
           (unsigned long long)b.offset, (int)b.step);
    if (b.flush_interval) {
        printf("Sending flush every %d requests\n", b.flush_interval);
    }
    fflush(stdout);

    int threads = b.nrreq < MAX_THREADS ? b.nrreq : MAX_THREADS;
    if (b.n < threads) {
        threads = (int)b.n;
    }
    pthread_t tid[MAX_THREADS];
    struct timeval t1, t2;
    int started = 0;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    gettimeofday(&t1, NULL);
    for (; started < threads; started++) {
        if (pthread_create(&tid[started], NULL, bench_worker, &b) != 0) {
            break;
        }
    }
    if (started == 0 && threads > 0) {
        bench_worker(&b); /* no threads to be had: one at a time */
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
    }
    gettimeofday(&t2, NULL);
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    int rc = b.failed ? 1 : 0;
    if (!b.failed) {
        printf("Run completed in %3.3f seconds.\n",
               (double)(t2.tv_sec - t1.tv_sec) +
               (double)(t2.tv_usec - t1.tv_usec) / 1000000);
    }
    if (vimg_close(b.img) < 0 && rc == 0) {
        rc = fail_lib();
    }
    return rc;
}

const struct command cmd_bench = {
    "bench", run, "time reads or writes on an image",
    "Usage: vimg bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=N] "
    "[-i AIO]\n"
    "         [-n] [--no-drain] [-o OFFSET] [--pattern=BYTE] [-q] [-s SIZE] "
    "[-S STEP]\n"
    "         [-t CACHE] [-U] [-w] FILENAME\n"
    "Send COUNT requests of SIZE bytes, DEPTH at a time, and print how long\n"
    "they took, as qemu-img bench does (DEPTH threads here, at most 256).\n"
    "  -c COUNT            requests (default 75000)\n"
    "  -d DEPTH            requests in flight (default 64)\n"
    "  -s SIZE             bytes per request (default 4096)\n"
    "  -o OFFSET           first offset (default 0)\n"
    "  -S STEP             from one request to the next (default SIZE);\n"
    "                      offsets wrap before the image's last SIZE bytes\n"
    "  -w                  write (default: read)\n"
    "  --pattern=BYTE      the byte written (default 0)\n"
    "  --flush-interval=N  flush every N writes (N >= DEPTH), once the\n"
    "                      requests in flight are done unless --no-drain\n"
    "  -t CACHE            cache mode (default writeback); -n and -i native\n"
    "                      need -t none or directsync (-i is checked, vimg\n"
    "                      has one I/O engine)\n"
    "  -f FMT              format (default: probe); -U force share\n"
    "  -q                  accepted; the two lines are printed anyway, as by\n"
    "                      qemu-img\n",
};
