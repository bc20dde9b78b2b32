/* Thread-local last error: the first message recorded within a public call
 * wins; every public entry point clears the slot first (libnbd's model). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static __thread char error_message[1024];
static __thread int error_errno;

static int error_vset(int errnum, const char *prefix, const char *fmt,
                      va_list ap)
{
    if (errnum < 0) {
        errnum = -errnum;
    }
    if (errnum == 0) {
        errnum = EIO;
    }
    if (error_errno == 0) {
        size_t n = 0;
        if (prefix) {
            n = (size_t)snprintf(error_message, sizeof error_message, "%s: ",
                                 prefix);
            if (n >= sizeof error_message) {
                n = sizeof error_message - 1;
            }
        }
        vsnprintf(error_message + n, sizeof error_message - n, fmt, ap);
        error_errno = errnum;
    }
    return -errnum;
}

int vimg_internal_error(int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_vset(errnum, NULL, fmt, ap);
    va_end(ap);
    return r;
}

int vimg_internal_img_error(const struct vimg_image *img, int errnum,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_vset(errnum, img ? img->filename : NULL, fmt, ap);
    va_end(ap);
    return r;
}

void vimg_internal_error_clear(void)
{
    error_errno = 0;
    error_message[0] = '\0';
}

void vimg_internal_error_append(const char *fmt, ...)
{
    size_t n = strlen(error_message);
    va_list ap;

    if (error_errno == 0 || n + 1 >= sizeof error_message) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(error_message + n, sizeof error_message - n, fmt, ap);
    va_end(ap);
}

bool vimg_internal_error_set(void)
{
    return error_errno != 0;
}

const char *vimg_get_error(void)
{
    return error_errno ? error_message : NULL;
}

int vimg_get_errno(void)
{
    return error_errno;
}
