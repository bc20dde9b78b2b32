/* The ISO 9660 writer's tree: walk the source folder (entries sorted by
 * name, so the walk does not depend on readdir order), add grafted files
 * and the boot catalog, and link hard-link groups to one copy of data. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iso-write.h"

/* Symlink targets beyond PATH_MAX cannot come from readlink anyway. */
#define ISO_WRITE_MAX_LINK PATH_MAX

/* Times later than W->now are clamped to it when W->clamp. */
static int64_t clamp_time(const struct iso_writer *w, int64_t t)
{
    return w->clamp && t > w->now ? w->now : t;
}

void iso_tree_free(struct iso_node *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        iso_tree_free(n->kids[i]);
    }
    free(n->kids);
    free(n->jkids);
    free(n->name);
    free(n->host_path);
    free(n->link_target);
    free(n);
}

static int new_node(struct iso_writer *w, struct iso_node *parent,
                    const char *name, struct iso_node **out)
{
    if (w->n_nodes >= ISO_WRITE_MAX_NODES) {
        return iso_fail(w, EFBIG, "more than %u files", ISO_WRITE_MAX_NODES);
    }
    struct iso_node *n = calloc(1, sizeof *n);
    if (!n || !(n->name = strdup(name))) {
        free(n);
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    n->parent = parent;
    n->depth = parent ? parent->depth + 1 : 1;
    n->nlink = 1;
    w->n_nodes++;
    if (parent && parent->n_kids == parent->kids_cap) {
        size_t cap = parent->kids_cap ? parent->kids_cap * 2 : 8;
        struct iso_node **k = realloc(parent->kids, cap * sizeof *k);
        if (!k) {
            free(n->name);
            free(n);
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        parent->kids = k;
        parent->kids_cap = cap;
    }
    if (parent) {
        parent->kids[parent->n_kids++] = n;
    }
    *out = n;
    return 0;
}

static void set_attrs(struct iso_writer *w, struct iso_node *n,
                      const struct stat *st)
{
    n->mode = st->st_mode;
    n->uid = st->st_uid;
    n->gid = st->st_gid;
    n->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
    n->rdev = st->st_rdev;
    n->host_dev = st->st_dev;
    n->host_ino = st->st_ino;
    n->host_nlink = st->st_nlink;
    n->mtime = clamp_time(w, st->st_mtim.tv_sec);
    if (w->clamp) {
        /* Reading the tree moves access times and copying it moves change
         * times: a reproducible image records the modification time for
         * all three. */
        n->atime = n->ctime = n->mtime;
    } else {
        n->atime = st->st_atim.tv_sec;
        n->ctime = st->st_ctim.tv_sec;
    }
    if (S_ISREG(st->st_mode)) {
        n->content = ISO_CONTENT_FILE;
    }
}

/* Attributes of a node the writer makes up (root without a source folder,
 * the boot catalog). */
static void set_generated(struct iso_writer *w, struct iso_node *n,
                          uint32_t mode)
{
    n->mode = mode;
    n->mtime = n->atime = n->ctime = w->now;
    n->host_nlink = 1;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (s) {
        memcpy(s, dir, a);
        s[a] = '/';
        memcpy(s + a + 1, name, b + 1);
    }
    return s;
}

static int walk(struct iso_writer *w, struct iso_node *dir);

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_entry(struct iso_writer *w, struct iso_node *dir,
                     const char *name)
{
    struct iso_node *n;
    struct stat st;
    int r = new_node(w, dir, name, &n);
    if (r < 0) {
        return r;
    }
    n->host_path = join(dir->host_path, name);
    if (!n->host_path) {
        return vimg_internal_error(ENOMEM, "out of memory");
    }
    if (lstat(n->host_path, &st) < 0) {
        return vimg_internal_error(errno, "%s: %s", n->host_path,
                                   strerror(errno));
    }
    set_attrs(w, n, &st);
    if (S_ISLNK(st.st_mode)) {
        /* On the heap: the walk recurses once per folder level. */
        n->link_target = malloc(ISO_WRITE_MAX_LINK);
        if (!n->link_target) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        ssize_t len = readlink(n->host_path, n->link_target,
                               ISO_WRITE_MAX_LINK);
        if (len < 0) {
            return vimg_internal_error(errno, "%s: %s", n->host_path,
                                       strerror(errno));
        }
        if (len >= ISO_WRITE_MAX_LINK) {
            return vimg_internal_error(ENAMETOOLONG, "%s: symbolic link "
                                       "target too long", n->host_path);
        }
        n->link_target[len] = '\0';
        char *fit = realloc(n->link_target, (size_t)len + 1);
        n->link_target = fit ? fit : n->link_target;
    }
    if (S_ISDIR(st.st_mode)) {
        /* The root is depth 1: deeper trees would not read back. */
        if (n->depth - 1 > ISO_MAX_DEPTH) {
            return iso_fail(w, EINVAL, "folders nest more than %d levels "
                            "deep, more than vimg reads back: %s",
                            ISO_MAX_DEPTH, n->host_path);
        }
        return walk(w, n);
    }
    return 0;
}

static int walk(struct iso_writer *w, struct iso_node *dir)
{
    /* Below the source folder nothing is followed: a folder swapped for a
     * symlink after lstat must not lead the walk elsewhere. */
    int fd = open(dir->host_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
                  (dir->parent ? O_NOFOLLOW : 0));
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return vimg_internal_error(e, "%s: %s", dir->host_path, strerror(e));
    }
    /* Collect the names first: the folder stays open only while read. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                r = vimg_internal_error(ENOMEM, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            r = vimg_internal_error(ENOMEM, "out of memory");
            break;
        }
        n++;
        errno = 0;
    }
    if (r == 0 && errno) {
        r = vimg_internal_error(errno, "%s: %s", dir->host_path,
                                strerror(errno));
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof *names, by_string);
    }
    for (size_t i = 0; i < n; i++) {
        if (r == 0) {
            r = add_entry(w, dir, names[i]);
        }
        free(names[i]);
    }
    free(names);
    return r;
}

static int add_grafts(struct iso_writer *w)
{
    const struct vimg_iso_create_params *p = w->p;
    for (size_t i = 0; i < p->n_grafts; i++) {
        const struct vimg_iso_graft *g = &p->grafts[i];
        struct iso_node *n;
        struct stat st;
        if (!g->name || !*g->name || strlen(g->name) > NAME_MAX ||
            strchr(g->name, '/') ||
            !strcmp(g->name, ".") || !strcmp(g->name, "..")) {
            return iso_fail(w, EINVAL, "invalid file name '%s'",
                            g->name ? g->name : "");
        }
        if (iso_tree_lookup(w->root, g->name)) {
            return iso_fail(w, EEXIST, "'%s' is given twice", g->name);
        }
        if (stat(g->host_path, &st) < 0) {
            return vimg_internal_error(errno, "%s: %s", g->host_path,
                                       strerror(errno));
        }
        if (!S_ISREG(st.st_mode)) {
            return vimg_internal_error(EINVAL, "%s: not a regular file",
                                       g->host_path);
        }
        int r = new_node(w, w->root, g->name, &n);
        if (r < 0) {
            return r;
        }
        if (!(n->host_path = strdup(g->host_path))) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        set_attrs(w, n, &st);
    }
    return 0;
}

struct iso_node *iso_tree_lookup(struct iso_node *root, const char *path)
{
    struct iso_node *n = root;
    while (n && *path) {
        const char *slash = strchr(path, '/');
        size_t len = slash ? (size_t)(slash - path) : strlen(path);
        struct iso_node *next = NULL;
        if (len > 0) {
            for (size_t i = 0; i < n->n_kids; i++) {
                if (strlen(n->kids[i]->name) == len &&
                    !memcmp(n->kids[i]->name, path, len)) {
                    next = n->kids[i];
                    break;
                }
            }
            n = next;
        }
        path += len + (slash ? 1 : 0);
    }
    return n;
}

/* The catalog replaces a file of that name (as mkisofs does when an
 * extracted image is rebuilt) or becomes a new file in an existing
 * folder. */
static int add_catalog(struct iso_writer *w)
{
    const char *path = w->p->boot_catalog ? w->p->boot_catalog : "boot.cat";
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    struct iso_node *parent = w->root, *n;

    if (slash) {
        char *dir = strndup(path, (size_t)(slash - path));
        if (!dir) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        parent = iso_tree_lookup(w->root, dir);
        free(dir);
    }
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || !parent ||
        !S_ISDIR(parent->mode)) {
        return iso_fail(w, ENOENT, "boot catalog '%s': its folder is not "
                        "in the image", path);
    }
    n = iso_tree_lookup(parent, name);
    if (n && !S_ISREG(n->mode)) {
        return iso_fail(w, EEXIST, "boot catalog '%s' exists and is not a "
                        "regular file", path);
    }
    if (!n) {
        int r = new_node(w, parent, name, &n);
        if (r < 0) {
            return r;
        }
    }
    set_generated(w, n, S_IFREG | 0444);
    n->uid = n->gid = 0;
    n->content = ISO_CONTENT_CATALOG;
    n->size = ISO_WRITE_CATALOG_BYTES;
    w->catalog = n;
    return 0;
}

/* Collect the regular files in walk order. */
static int collect_files(struct iso_node *n, struct iso_node ***v,
                         size_t *len, size_t *cap)
{
    if (n->content == ISO_CONTENT_FILE) {
        if (*len == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            struct iso_node **nv = realloc(*v, *cap * sizeof *nv);
            if (!nv) {
                return vimg_internal_error(ENOMEM, "out of memory");
            }
            *v = nv;
        }
        (*v)[(*len)++] = n;
    }
    for (size_t i = 0; i < n->n_kids; i++) {
        int r = collect_files(n->kids[i], v, len, cap);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

static int by_inode(const void *a, const void *b)
{
    const struct iso_node *x = *(struct iso_node *const *)a;
    const struct iso_node *y = *(struct iso_node *const *)b;
    if (x->host_dev != y->host_dev) {
        return x->host_dev < y->host_dev ? -1 : 1;
    }
    if (x->host_ino != y->host_ino) {
        return x->host_ino < y->host_ino ? -1 : 1;
    }
    /* Walk order (serial) decides the owner, so data order is stable. */
    return x->serial < y->serial ? -1 : x->serial > y->serial;
}

static void number(struct iso_node *n, uint32_t *next)
{
    n->serial = ++*next;
    n->data_owner = n;
    for (size_t i = 0; i < n->n_kids; i++) {
        number(n->kids[i], next);
    }
}

/* Files with the same host inode share one copy of data, a serial number
 * and a link count: the number of their names inside the image. */
static int link_hard_links(struct iso_writer *w)
{
    struct iso_node **v = NULL;
    size_t len = 0, cap = 0;
    uint32_t next = 0;
    number(w->root, &next);
    int r = collect_files(w->root, &v, &len, &cap);
    if (r < 0) {
        free(v);
        return r;
    }
    if (len > 1) {
        qsort(v, len, sizeof *v, by_inode);
    }
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && v[i]->host_nlink > 1 &&
               v[j]->host_dev == v[i]->host_dev &&
               v[j]->host_ino == v[i]->host_ino) {
            j++;
        }
        for (size_t k = i; k < j; k++) {
            v[k]->data_owner = v[i];
            v[k]->serial = v[i]->serial;
            v[k]->nlink = (uint32_t)(j - i);
        }
        i = j;
    }
    free(v);
    return 0;
}

int iso_tree_build(struct iso_writer *w, const char *source)
{
    struct stat st;
    int r = new_node(w, NULL, "", &w->root);
    if (r < 0) {
        return r;
    }
    if (source) {
        if (stat(source, &st) < 0) {
            return vimg_internal_error(errno, "%s: %s", source,
                                       strerror(errno));
        }
        if (!S_ISDIR(st.st_mode)) {
            return vimg_internal_error(ENOTDIR, "%s: not a folder", source);
        }
        set_attrs(w, w->root, &st);
        if (!(w->root->host_path = strdup(source))) {
            return vimg_internal_error(ENOMEM, "out of memory");
        }
        r = walk(w, w->root);
    } else {
        set_generated(w, w->root, S_IFDIR | 0755);
    }
    if (r == 0) {
        r = add_grafts(w);
    }
    if (r == 0 && (w->p->bios_boot || w->p->efi_boot)) {
        r = add_catalog(w);
    }
    if (r == 0) {
        r = link_hard_links(w);
    }
    return r;
}
