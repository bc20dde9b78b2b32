/* Scope-bound cleanup with __attribute__((cleanup)), so error paths cannot
 * leak: `CLEANUP_FREE char *s = strdup(x);`. */
#ifndef VIMG_CLEANUP_H
#define VIMG_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_free(void *ptr)
{
    free(*(void **)ptr);
}
static inline void cleanup_close(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
    }
}
#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))
#define CLEANUP_CLOSE __attribute__((cleanup(cleanup_close)))

#endif
