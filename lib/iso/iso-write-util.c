/* Small helpers of the ISO 9660 writer: growable buffers, dates, errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iso-write.h"

static int reserve(struct iso_buf *b, size_t more)
{
    if (b->cap - b->len >= more) {
        return 0;
    }
    size_t want = b->cap ? b->cap : 256;
    while (want - b->len < more) {
        if (want > SIZE_MAX / 2) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        want *= 2;
    }
    uint8_t *d = realloc(b->data, want);
    if (!d) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    b->data = d;
    b->cap = want;
    return 0;
}

int iso_buf_append(struct iso_buf *b, const void *data, size_t len)
{
    int r = reserve(b, len);
    if (r < 0) {
        return r;
    }
    if (len) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    return 0;
}

int iso_buf_zeros(struct iso_buf *b, size_t len)
{
    int r = reserve(b, len);
    if (r < 0) {
        return r;
    }
    memset(b->data + b->len, 0, len);
    b->len += len;
    return 0;
}

void iso_buf_free(struct iso_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Years before 1900 or after 2155 do not fit a directory date; clamp
 * rather than wrap. */
static void utc(int64_t t, struct tm *tm)
{
    const int64_t lo = -2208988800LL;     /* 1900-01-01 */
    const int64_t hi = 5900403199LL;      /* 2156-12-31 23:59:59 */
    time_t tt = (time_t)(t < lo ? lo : t > hi ? hi : t);
    gmtime_r(&tt, tm);
}

void iso_date7(int64_t t, uint8_t out[ISO_DIR_DATE_SIZE])
{
    struct tm tm;
    utc(t, &tm);
    out[ISO_DIR_DATE_YEAR] = (uint8_t)(tm.tm_year > 255 ? 255 : tm.tm_year);
    out[ISO_DIR_DATE_MONTH] = (uint8_t)(tm.tm_mon + 1);
    out[ISO_DIR_DATE_DAY] = (uint8_t)tm.tm_mday;
    out[ISO_DIR_DATE_HOUR] = (uint8_t)tm.tm_hour;
    out[ISO_DIR_DATE_MINUTE] = (uint8_t)tm.tm_min;
    out[ISO_DIR_DATE_SECOND] = (uint8_t)tm.tm_sec;
    out[ISO_DIR_DATE_GMTOFF] = 0;
}

void iso_date17(int64_t t, uint8_t out[ISO_VOL_DATE_SIZE])
{
    struct tm tm;
    char s[96];
    utc(t, &tm);
    snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02d00",
             tm.tm_year + 1900 > 9999 ? 9999 : tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, s, ISO_VOL_DATE_GMTOFF);
    out[ISO_VOL_DATE_GMTOFF] = 0;
}

int iso_fail(const struct iso_writer *w, int errnum, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vimg_internal_error(errnum, "%s: %s", w->output, msg);
}
