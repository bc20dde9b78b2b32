/* Hostile-image checks shared by the format unit tests (include after
 * test.h, in a file that defines _GNU_SOURCE for strcasestr). */
#ifndef VIMG_TEST_REFUSED_H
#define VIMG_TEST_REFUSED_H

#include <vimg/vimg.h>

#include "test.h"

/* The last library error is ERR, its message starts with "NAME: " and
 * holds WORD (any case); LINE is the caller's, for the report. */
static inline void test_check_refusal(const char *name, int err,
                                      const char *word, int line)
{
    const char *m = vimg_get_error();

    if (vimg_get_errno() != err || !m ||
        strncmp(m, name, strlen(name)) != 0 ||
        strncmp(m + strlen(name), ": ", 2) != 0 || !strcasestr(m, word)) {
        fprintf(stderr, "line %d: got errno %d '%s', want %d and '%s'\n",
                line, vimg_get_errno(), m ? m : "(null)", err, word);
        test_failures++;
    }
}

/* Opening the LEN bytes at B (freed here) as FORMAT, named NAME, is
 * refused as test_check_refusal says. */
static inline void test_expect_refused(const char *format, const char *name,
                                       uint8_t *b, size_t len, int err,
                                       const char *word, int line)
{
    struct vimg_open_params p = { .format = format };
    struct vimg_image *img = vimg_open_buffer(b, len, name, &p);

    if (img) {
        fprintf(stderr, "line %d: hostile image opened\n", line);
        test_failures++;
        vimg_close(img);
    } else {
        test_check_refusal(name, err, word, line);
    }
    free(b);
}

#endif
