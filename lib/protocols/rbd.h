/* Ceph RBD image names as qemu-img writes them, parsed apart from librbd
 * so that the parser has a unit test of its own:
 *
 *   rbd:POOL[/NAMESPACE]/IMAGE[@SNAPSHOT][:KEY=VALUE]...
 *
 * A backslash makes the next character plain (`\:` inside a value such as
 * mon_host=10.0.0.1\:6789, `\@`, `\/`, `\=`, `\\`). The keys `conf` (a
 * Ceph configuration file) and `id` (the client name without "client.")
 * are the driver's own; every other key is a Ceph option handed to
 * librados (QEMU's qemu_rbd_parse_filename). */
#ifndef VIMG_RBD_H
#define VIMG_RBD_H

#include <stdbool.h>
#include <stddef.h>

#include "../internal.h"

struct vimg_rbd_name {
    char *pool;
    char *nspace;     /* "" when the name gives none */
    char *image;
    char *snap;       /* NULL: the image itself */
    char *conf;       /* NULL: Ceph's default search ($CEPH_CONF, ...) */
    char *user;       /* from id=; NULL: Ceph's default (admin) */
    size_t n_opts;    /* other KEY=VALUE pairs, in order */
    char **keys, **values;
};

/* True when NAME starts with "rbd:". */
bool vimg_internal_rbd_is_name(const char *name);
/* Parse NAME into OUT (freed with vimg_internal_rbd_name_free even on
 * failure). -EINVAL with a message naming NAME when it is malformed. */
int vimg_internal_rbd_parse(const char *name, struct vimg_rbd_name *out);
void vimg_internal_rbd_name_free(struct vimg_rbd_name *n);
/* N written back as a name that parses to N again, escaping what needs
 * it; NULL when out of memory. The caller frees it. */
char *vimg_internal_rbd_format(const struct vimg_rbd_name *n);

#endif
