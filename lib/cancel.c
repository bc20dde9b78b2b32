/* Cancelling running operations from a signal handler (vimg_cancel). */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "internal.h"

_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "a handler needs lock-free bool");

static atomic_bool cancelled;

void vimg_cancel(void)
{
    atomic_store(&cancelled, true);
}

int vimg_internal_check_cancelled(const char *name)
{
    if (!atomic_load(&cancelled)) {
        return 0;
    }
    return vimg_internal_error(ECANCELED, "%s: interrupted", name);
}
