/* Parent paths as Windows formats store them (VHD and VHDX differencing
 * disks): several candidates, in the order the specifications say to try
 * them, with "\" separators. They become a backing name that the core
 * then opens under the caller's open policy, like any backing file. */
#ifndef VIMG_PARENT_PATH_H
#define VIMG_PARENT_PATH_H

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../internal.h"

/* Candidates a parent locator may hold: VHDX has three, VHD eight. */
#define PARENT_PATH_MAX_CANDIDATES 8

/* PATH (UTF-8, as stored) with "/" for "\", or NULL when it can only
 * mean something on Windows: a drive letter ("C:\..."), a volume or UNC
 * name ("\\?\Volume{...}\...", "\\server\...") or nothing at all. A
 * "\\?\" prefix is dropped first. "file://" URLs (VHD's MacX locator)
 * lose the scheme and host, relative paths their leading ".\". The
 * caller frees the result; *ERR is -ENOMEM when a NULL comes from a
 * failed allocation, else 0. */
static inline char *parent_path_convert(const char *path, int *err)
{
    char *out;

    *err = 0;
    if (strncmp(path, "\\\\?\\", 4) == 0) {
        path += 4;
    } else if (strncmp(path, "file://", 7) == 0) {
        path += 7;
        if (strncmp(path, "localhost/", 10) == 0) {
            path += 9;
        }
        if (path[0] != '/') {
            return NULL; /* another host's file */
        }
    }
    if (!path[0] || (isalpha((unsigned char)path[0]) && path[1] == ':') ||
        (path[0] == '\\' && path[1] == '\\')) {
        return NULL;
    }
    /* Windows writes relative paths as ".\parent.vhd": the same file. */
    while (path[0] == '.' && (path[1] == '\\' || path[1] == '/') &&
           path[2]) {
        path += 2;
    }
    if (!(out = strdup(path))) {
        *err = -ENOMEM;
        return NULL;
    }
    for (char *p = out; *p; p++) {
        if (*p == '\\') {
            *p = '/';
        }
    }
    return out;
}

/* Choose IMG's backing name among the N converted candidates NAMES
 * (NULL entries are skipped), in order: the first that resolves under
 * the policy to an existing file, else the first one at all, so that the
 * core's open reports what is missing or forbidden. With a policy that
 * opens no references nothing is looked at on disk. Sets
 * img->backing_name; -ENOENT (with a message naming WHAT) when there is
 * no candidate. */
static inline int parent_path_choose(struct vimg_image *img, char **names,
                                     size_t n, const char *what)
{
    const char *pick = NULL;

    for (size_t i = 0; i < n; i++) {
        char *path = NULL;
        bool found;

        if (!names[i]) {
            continue;
        }
        if (!pick) {
            pick = names[i];
        }
        if (img->params.refs == VIMG_REFS_NEVER) {
            break;
        }
        found = vimg_internal_resolve_reference(img, names[i], &path) == 0 &&
                access(path, F_OK) == 0;
        vimg_internal_error_clear();
        free(path);
        if (found) {
            pick = names[i];
            break;
        }
    }
    if (!pick) {
        return vimg_internal_img_error(img, ENOENT, "the %s gives no "
                                       "parent path that can be opened here "
                                       "(none, or only Windows drive or "
                                       "volume paths)", what);
    }
    if (!(img->backing_name = strdup(pick))) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    return 0;
}

#endif
