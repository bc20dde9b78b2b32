/* A minimal unit-test harness: CHECK records a failure and carries on;
 * TEST_MAIN returns non-zero when anything failed. Tests link libvimg
 * statically and may use lib/internal.h. */
#ifndef VIMG_TEST_H
#define VIMG_TEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                       \
            test_failures++;                                                \
        }                                                                   \
    } while (0)

#define CHECK_EQ(a, b)                                                      \
    do {                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ != b_) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n",\
                    __FILE__, __LINE__, #a, #b, a_, b_);                    \
            test_failures++;                                                \
        }                                                                   \
    } while (0)

/* The last library error starts with PREFIX and has errno ERR. */
#define CHECK_ERROR(err, prefix)                                            \
    do {                                                                    \
        const char *m_ = vimg_get_error();                                  \
        CHECK_EQ(vimg_get_errno(), (err));                                  \
        if (!m_ || strncmp(m_, (prefix), strlen(prefix)) != 0) {            \
            fprintf(stderr, "%s:%d: error message '%s' does not start with " \
                    "'%s'\n", __FILE__, __LINE__, m_ ? m_ : "(null)",       \
                    (prefix));                                              \
            test_failures++;                                                \
        }                                                                   \
    } while (0)

#define TEST_MAIN_END()                                                     \
    do {                                                                    \
        if (test_failures) {                                                \
            fprintf(stderr, "%d check(s) failed\n", test_failures);         \
            return 1;                                                       \
        }                                                                   \
        return 0;                                                           \
    } while (0)

#endif
