/* Fuzz the ISO 9660 writer's naming and layout on trees of arbitrary
 * names: host names are any bytes but '/' and NUL, so name mapping, clash
 * suffixes, Joliet conversion, Rock Ridge entries and continuation areas
 * must hold their invariants for all of them. The input is one entry per
 * line: a type byte, then the name (a symlink's target follows a tab).
 * Lower-case types go in the root, upper-case ones in the last folder:
 * f/F file, b/B file of (name length) GiB, d/D folder, l/L symlink,
 * p/P FIFO. Any broken invariant aborts. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "iso/iso-write.h"

#define MAX_ENTRIES 300

static struct iso_node *add(struct iso_node *dir, const char *name,
                            uint32_t mode)
{
    for (size_t i = 0; i < dir->n_kids; i++) {
        if (!strcmp(dir->kids[i]->name, name)) {
            return NULL;    /* a folder cannot hold a name twice */
        }
    }
    struct iso_node *n = calloc(1, sizeof *n);
    struct iso_node **k = realloc(dir->kids, (dir->n_kids + 1) * sizeof *k);
    if (!n || !k || !(n->name = strdup(name))) {
        abort();
    }
    dir->kids = k;
    k[dir->n_kids++] = n;
    n->parent = dir;
    n->depth = dir->depth + 1;
    n->mode = mode;
    n->nlink = 1;
    n->data_owner = n;
    n->serial = (uint32_t)dir->n_kids;
    return n;
}

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* ECMA-119 9.3 order of two identifiers, as the writer must produce. */
static int iso_cmp(const struct iso_node *x, const struct iso_node *y)
{
    size_t xn = strcspn(x->iso_id, ".;"), yn = strcspn(y->iso_id, ".;");
    for (size_t i = 0; i < xn || i < yn; i++) {
        int a = i < xn ? (unsigned char)x->iso_id[i] : ' ';
        int b = i < yn ? (unsigned char)y->iso_id[i] : ' ';
        if (a != b) {
            return a - b;
        }
    }
    return strcmp(x->iso_id + xn, y->iso_id + yn);
}

static void check_folder(const struct iso_node *d)
{
    const struct iso_node *prev = NULL;
    for (size_t i = 0; i < d->n_kids; i++) {
        const struct iso_node *n = d->kids[i];
        if (!n->in_iso) {
            continue;
        }
        size_t len = strlen(n->iso_id);
        check(len == n->iso_id_len && len > 0 && len <= ISO_WRITE_ID_MAX);
        for (size_t k = 0; k < len; k++) {
            char c = n->iso_id[k];
            check((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (!S_ISDIR(n->mode) && (c == '.' ||
                                                     c == ';')));
        }
        check(S_ISDIR(n->mode) || (len > 3 && !strcmp(n->iso_id + len - 2,
                                                      ";1")));
        check(!prev || iso_cmp(prev, n) < 0);
        prev = n;
    }
    for (size_t i = 0; i < d->n_jkids; i++) {
        const struct iso_node *n = d->jkids[i];
        check(n->jname_len > 0 && n->jname_len <= ISO_JOLIET_MAX_NAME_CHARS);
        for (size_t k = 0; k < n->jname_len; k++) {
            uint16_t c = n->jname[k];
            check(c >= 0x20 && !strchr("*/:;?\\", c < 0x80 ? c : 'a'));
        }
        if (i > 0) {
            const struct iso_node *m = d->jkids[i - 1];
            size_t l = m->jname_len < n->jname_len ? m->jname_len :
                       n->jname_len;
            /* Distinct, and in code-unit order. */
            size_t k = 0;
            while (k < l && m->jname[k] == n->jname[k]) {
                k++;
            }
            check(k < l ? m->jname[k] < n->jname[k] :
                  m->jname_len < n->jname_len);
        }
    }
    for (size_t i = 0; i < d->n_kids; i++) {
        if (S_ISDIR(d->kids[i]->mode)) {
            check_folder(d->kids[i]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vimg_iso_create_params p;
    struct iso_writer w = { 0 };
    vimg_iso_create_params_init(&p);
    w.p = &p;
    w.output = "fuzz.iso";
    w.root = calloc(1, sizeof *w.root);
    if (!w.root || !(w.root->name = strdup(""))) {
        abort();
    }
    w.root->mode = S_IFDIR | 0755;
    w.root->depth = 1;
    w.root->data_owner = w.root;
    struct iso_node *last = w.root;

    size_t entries = 0;
    for (size_t at = 0; at < size && entries < MAX_ENTRIES; entries++) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
        char line[600];
        size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
        memcpy(line, data + at, n);
        line[n] = '\0';
        at += len + 1;
        if (n < 2) {
            continue;
        }
        char type = line[0], *name = line + 1, *target = strchr(name, '\t');
        if (target) {
            *target++ = '\0';
        }
        for (char *c = name; *c; c++) {
            *c = *c == '/' ? '_' : *c;
        }
        if (strlen(name) > 255) {
            name[255] = '\0';
        }
        if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
            continue;
        }
        struct iso_node *dir = type >= 'a' ? w.root : last, *node;
        switch (type | 0x20) {
        case 'd':
            if ((node = add(dir, name, S_IFDIR | 0755))) {
                last = node;
            }
            break;
        case 'l':
            if ((node = add(dir, name, S_IFLNK | 0777)) &&
                !(node->link_target = strdup(target ? target : "x"))) {
                abort();
            }
            break;
        case 'p':
            add(dir, name, S_IFIFO | 0644);
            break;
        case 'b':
        case 'f':
            if ((node = add(dir, name, S_IFREG | 0644))) {
                node->content = ISO_CONTENT_FILE;
                node->size = (type | 0x20) == 'b' ? strlen(name) << 30 :
                             strlen(name);
            }
            break;
        default:
            break;
        }
    }

    check(iso_names_assign(&w) == 0);
    check_folder(w.root);
    if (iso_layout(&w) == 0) {
        /* Writing must reproduce the sizes the layout was made with. */
        for (int j = 0; j < 2; j++) {
            bool joliet = j == 1;
            size_t nd = joliet ? w.n_jdirs : w.n_dirs;
            for (size_t i = 0; i < nd; i++) {
                const struct iso_node *d = joliet ? w.jdirs[i] : w.dirs[i];
                struct iso_buf b = { 0 }, ce = { 0 };
                uint64_t ce_bytes;
                check(iso_layout_dir(&w, d, joliet, &b, &ce, &ce_bytes) == 0);
                check(b.len == (joliet ? d->jdir_bytes : d->dir_bytes));
                check(b.len % ISO_SECTOR_SIZE == 0);
                check(joliet || ce.len == (uint64_t)d->ce_blocks *
                      ISO_SECTOR_SIZE);
                iso_buf_free(&b);
                iso_buf_free(&ce);
            }
        }
    }
    iso_tree_free(w.root);
    free(w.dirs);
    free(w.jdirs);
    free(w.files);
    return 0;
}
