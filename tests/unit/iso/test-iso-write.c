/* The ISO 9660 writer's pieces on in-memory trees and buffers: name
 * mapping and clash suffixes in both trees, the ECMA-119 sort, Rock Ridge
 * symlink components, SUSP placement into chained continuation areas,
 * dates and the boot catalog checksum; then whole images written to a
 * scratch folder and read back through vimg's own ISO reader. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iso/iso-write.h"
#include "vimg/vimg.h"
#include "tests/unit/test.h"

static struct iso_node *node(struct iso_node *parent, const char *name,
                             uint32_t mode)
{
    struct iso_node *n = calloc(1, sizeof *n);
    n->name = strdup(name);
    n->mode = mode;
    n->parent = parent;
    n->nlink = 1;
    n->data_owner = n;
    if (parent) {
        parent->kids = realloc(parent->kids,
                               (parent->n_kids + 1) * sizeof *parent->kids);
        parent->kids[parent->n_kids++] = n;
    }
    return n;
}

static const char *joliet(const struct iso_node *n, char *buf)
{
    for (size_t i = 0; i < n->jname_len; i++) {
        buf[i] = n->jname[i] < 0x80 ? (char)n->jname[i] : '?';
    }
    buf[n->jname_len] = '\0';
    return buf;
}

static void test_names(void)
{
    struct vimg_iso_create_params p;
    struct iso_writer w = { 0 };
    vimg_iso_create_params_init(&p);
    w.p = &p;
    w.output = "t.iso";
    w.root = node(NULL, "", S_IFDIR | 0755);
    /* Added out of host-name order: clashes still resolve by name. ISO
     * names map each byte that is not a d-character to '_'. */
    node(w.root, "readme.txt", S_IFREG | 0644);
    node(w.root, "README.TXT", S_IFREG | 0644);
    node(w.root, "readme_txt", S_IFDIR | 0755);
    node(w.root, "a", S_IFREG | 0644);
    node(w.root, "A.", S_IFREG | 0644);
    node(w.root, "Quite a long name.verylongextension", S_IFREG | 0644);
    node(w.root, "link", S_IFLNK | 0777);
    char x70[80];
    memset(x70, 'x', 70);
    strcpy(x70 + 70, "1.txt");
    node(w.root, x70, S_IFREG | 0644);
    x70[70] = '2';
    node(w.root, x70, S_IFREG | 0644);
    node(w.root, "caf\xc3\xa9 \xf0\x9f\x98\x80?\xff.txt", S_IFREG | 0644);

    CHECK_EQ(iso_names_assign(&w), 0);
    static const char *const want[] = {
        "A.;1", "A1.;1", "CAF_________.TXT;1", "LINK.;1",
        "QUITE_A_LONG_NAME.VERYLONG;1", "README.TXT;1", "README1.TXT;1",
        "README_TXT",
        /* 27 characters of name; '1' sorts before 'X'. */
        "XXXXXXXXXXXXXXXXXXXXXXXXXX1.TXT;1",
        "XXXXXXXXXXXXXXXXXXXXXXXXXXX.TXT;1",
    };
    CHECK_EQ(w.root->n_kids, 10);
    for (size_t i = 0; i < w.root->n_kids && i < 10; i++) {
        if (strcmp(w.root->kids[i]->iso_id, want[i])) {
            fprintf(stderr, "kid %zu: %s, want %s\n", i,
                    w.root->kids[i]->iso_id, want[i]);
            CHECK(0);
        }
    }
    /* Rock Ridge off would drop the link; here it is in the ISO tree but
     * never in Joliet. */
    CHECK_EQ(w.root->n_jkids, 9);
    CHECK_EQ(w.root->nlink, 3);
    char buf[80];
    struct iso_node *caf = NULL, *x1 = NULL, *x2 = NULL;
    for (size_t i = 0; i < w.root->n_jkids; i++) {
        struct iso_node *n = w.root->jkids[i];
        CHECK(!S_ISLNK(n->mode));
        if (i > 0) {
            /* Joliet order: by UCS-2 code units. */
            const struct iso_node *m = w.root->jkids[i - 1];
            size_t k = 0;
            while (k < m->jname_len && k < n->jname_len &&
                   m->jname[k] == n->jname[k]) {
                k++;
            }
            CHECK(k == m->jname_len || (k < n->jname_len &&
                                        m->jname[k] < n->jname[k]));
        }
        bool longer = strlen(n->name) > 70;
        caf = n->name[0] == 'c' ? n : caf;
        x1 = longer && !strcmp(n->name + 70, "1.txt") ? n : x1;
        x2 = longer && !strcmp(n->name + 70, "2.txt") ? n : x2;
    }
    CHECK(caf && x1 && x2);
    if (caf) {
        /* é kept, the emoji is one '_', '?' and a stray byte are '_'. */
        CHECK(!strcmp(joliet(caf, buf), "caf? ___.txt"));
        CHECK_EQ(caf->jname[3], 0xE9);
    }
    if (x1 && x2) {
        CHECK_EQ(x1->jname_len, 64);
        CHECK_EQ(x2->jname_len, 64);
        char want1[80], want2[80];
        memset(want1, 'x', 60);
        strcpy(want1 + 60, ".txt");
        memset(want2, 'x', 59);
        strcpy(want2 + 59, "1.txt");
        CHECK(!strcmp(joliet(x1, buf), want1));
        CHECK(!strcmp(joliet(x2, buf), want2));
    }
    iso_tree_free(w.root);
}

/* SL for "/usr/../lib/./x" plus NM, read back component by component. */
static void test_symlink_entries(void)
{
    struct iso_node *n = node(NULL, "l", S_IFLNK | 0777);
    n->link_target = strdup("/usr/../lib/./x");
    struct iso_buf b = { 0 };
    CHECK_EQ(iso_rr_entries(n, ISO_RR_NAMED, &b), 0);
    const uint8_t *sl = NULL;
    for (size_t i = 0; i < b.len; i += b.data[i + 2]) {
        if (b.data[i] == 'S' && b.data[i + 1] == 'L') {
            sl = b.data + i;
        }
    }
    CHECK(sl != NULL);
    if (sl) {
        static const uint8_t want[] = {
            ISO_RR_SL_ROOT, 0, 0, 3, 'u', 's', 'r', ISO_RR_SL_PARENT, 0,
            0, 3, 'l', 'i', 'b', ISO_RR_SL_CURRENT, 0, 0, 1, 'x',
        };
        CHECK_EQ(sl[2], ISO_RR_SL_COMPONENTS_OFFSET + sizeof want);
        CHECK_EQ(sl[ISO_RR_SL_FLAGS_OFFSET], 0);
        CHECK(!memcmp(sl + ISO_RR_SL_COMPONENTS_OFFSET, want, sizeof want));
    }
    iso_buf_free(&b);
    iso_tree_free(n);
}

static void entry(struct iso_buf *b, char tag, size_t len)
{
    iso_buf_zeros(b, len);
    uint8_t *e = b->data + b->len - len;
    e[0] = 'X';
    e[1] = (uint8_t)tag;
    e[2] = (uint8_t)len;
    e[3] = 1;
}

/* Entries beyond the record go to the continuation area; a chunk that
 * would cross a sector ends with a CE to the next sector. */
static void test_pack(void)
{
    struct iso_buf e = { 0 }, inl = { 0 }, ce = { 0 };
    struct iso_ce_cursor cur = { 100, 0, &ce };

    entry(&e, 'a', 60);
    entry(&e, 'b', 60);
    CHECK_EQ(iso_rr_pack(&e, 120, &cur, &inl), 0);
    CHECK_EQ(inl.len, 120);
    CHECK_EQ(cur.pos, 0);

    /* 100 + 250 * 10 bytes into 150 inline bytes. */
    e.len = inl.len = 0;
    entry(&e, 'a', 100);
    for (int i = 0; i < 10; i++) {
        entry(&e, (char)('0' + i), 250);
    }
    cur.pos = 1900;   /* the sector is nearly full: skip to the next */
    CHECK_EQ(iso_rr_pack(&e, 150, &cur, &inl), 0);
    CHECK_EQ(inl.len, 100 + ISO_SUSP_CE_LENGTH);
    const uint8_t *c = inl.data + 100;
    CHECK(c[0] == 'C' && c[1] == 'E' && c[2] == ISO_SUSP_CE_LENGTH);
    CHECK_EQ(iso_load_both32(c + ISO_SUSP_CE_BLOCK_OFFSET), 101);
    CHECK_EQ(iso_load_both32(c + ISO_SUSP_CE_OFFSET_OFFSET), 0);
    /* Eight 250-byte entries and a CE fill 2028 bytes of sector 101. */
    CHECK_EQ(iso_load_both32(c + ISO_SUSP_CE_LENGTH_OFFSET),
             8 * 250 + ISO_SUSP_CE_LENGTH);
    const uint8_t *s1 = ce.data + 2048;
    CHECK_EQ(ce.len, 2 * 2048 + 500);
    CHECK(s1[1] == '0' && s1[7 * 250 + 1] == '7');
    c = s1 + 8 * 250;
    CHECK(c[0] == 'C' && c[1] == 'E');
    CHECK_EQ(iso_load_both32(c + ISO_SUSP_CE_BLOCK_OFFSET), 102);
    CHECK_EQ(iso_load_both32(c + ISO_SUSP_CE_OFFSET_OFFSET), 0);
    CHECK_EQ(iso_load_both32(c + ISO_SUSP_CE_LENGTH_OFFSET), 500);
    CHECK(ce.data[2 * 2048 + 1] == '8' && ce.data[2 * 2048 + 251] == '9');
    CHECK_EQ(cur.pos, 2 * 2048 + 500);

    /* Sizing (no buffer) moves the cursor the same way. */
    struct iso_ce_cursor sizing = { 0, 1900, NULL };
    inl.len = 0;
    CHECK_EQ(iso_rr_pack(&e, 150, &sizing, &inl), 0);
    CHECK_EQ(sizing.pos, cur.pos);
    iso_buf_free(&e);
    iso_buf_free(&inl);
    iso_buf_free(&ce);
}

static void test_dates(void)
{
    uint8_t d[ISO_VOL_DATE_SIZE];
    iso_date7(0, d);
    CHECK(d[0] == 70 && d[1] == 1 && d[2] == 1 && d[3] == 0 && d[6] == 0);
    iso_date7(1700000000, d);
    CHECK(d[0] == 123 && d[1] == 11 && d[2] == 14 && d[3] == 22 &&
          d[4] == 13 && d[5] == 20);
    iso_date17(1700000000, d);
    CHECK(!memcmp(d, "2023111422132000", 16) && d[16] == 0);
    /* Beyond what a directory date holds: clamped, not wrapped. */
    iso_date7(INT64_MAX, d);
    CHECK_EQ(d[0], 255);
}

static void test_catalog(void)
{
    struct vimg_iso_create_params p;
    struct iso_node bios = { .data_lba = 40 }, efi = { .data_lba = 50,
                                                       .size = 1000000 };
    struct iso_writer w = { .p = &p, .bios = &bios, .efi = &efi };
    uint8_t s[ISO_SECTOR_SIZE];
    vimg_iso_create_params_init(&p);
    iso_eltorito_catalog(&w, s);
    uint16_t sum = 0;
    for (int i = 0; i < 32; i += 2) {
        sum = (uint16_t)(sum + load_le16(s + i));
    }
    CHECK_EQ(sum, 0);
    CHECK(s[0] == 1 && s[1] == ISO_ET_PLATFORM_X86 && s[30] == 0x55 &&
          s[31] == 0xAA);
    CHECK(s[32] == ISO_ET_BOOTABLE && s[33] == ISO_ET_MEDIA_NO_EMULATION);
    CHECK_EQ(load_le16(s + 32 + ISO_ET_ENTRY_SECTOR_COUNT_OFFSET), 4);
    CHECK_EQ(load_le32(s + 32 + ISO_ET_ENTRY_LOAD_RBA_OFFSET), 40);
    CHECK(s[64] == ISO_ET_SEC_HEADER_LAST && s[65] == ISO_ET_PLATFORM_EFI);
    CHECK_EQ(load_le16(s + 64 + ISO_ET_SEC_ENTRY_COUNT_OFFSET), 1);
    CHECK_EQ(s[96], ISO_ET_BOOTABLE);
    CHECK_EQ(load_le16(s + 96 + ISO_ET_ENTRY_SECTOR_COUNT_OFFSET), 1954);
    CHECK_EQ(load_le32(s + 96 + ISO_ET_ENTRY_LOAD_RBA_OFFSET), 50);
    CHECK_EQ(s[128], 0);
}

static void test_bad_params(void)
{
    struct vimg_iso_create_params p;
    vimg_iso_create_params_init(&p);
    p.volume_id = "";
    CHECK_EQ(vimg_iso_create("x.iso", NULL, &p), -1);
    CHECK_ERROR(EINVAL, "volume id '' must be 1 to 32 characters");
    p.volume_id = NULL;
    struct vimg_iso_graft g = { "a/b", "/dev/null" };
    p.grafts = &g;
    p.n_grafts = 1;
    CHECK_EQ(vimg_iso_create("x.iso", NULL, &p), -1);
    CHECK_ERROR(EINVAL, "x.iso: invalid file name 'a/b'");
}


/* ---- Whole images, read back by the reader ------------------------- */

static char scratch[64];

static void put_file(const char *rel, const char *data, size_t len,
                     time_t mtime)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", scratch, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
    close(fd);
    struct timespec t[2] = { { mtime, 0 }, { mtime, 0 } };
    CHECK(utimensat(AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW) == 0);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    *len = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        *len = (size_t)ftell(f);
        rewind(f);
        buf = malloc(*len ? *len : 1);
        if (buf && fread(buf, 1, *len, f) != *len) {
            *len = 0;
        }
        fclose(f);
    }
    return buf;
}

static void test_round_trip(void)
{
    char src[128], out[128], out2[128], path[256];
    snprintf(src, sizeof src, "%s/src", scratch);
    snprintf(out, sizeof out, "%s/a.iso", scratch);
    snprintf(out2, sizeof out2, "%s/b.iso", scratch);
    CHECK(mkdir(src, 0755) == 0);
    snprintf(path, sizeof path, "%s/src/sub", scratch);
    CHECK(mkdir(path, 0700) == 0);
    put_file("src/sub/hello.txt", "hello, world\n", 13, 1000000000);
    put_file("src/Long File Name With Spaces.data", "x", 1, 2000000000);
    snprintf(path, sizeof path, "%s/src/sub/link", scratch);
    CHECK(symlink("../Long File Name With Spaces.data", path) == 0);
    char a[256];
    snprintf(a, sizeof a, "%s/src/sub/hello.txt", scratch);
    snprintf(path, sizeof path, "%s/src/hard", scratch);
    CHECK(link(a, path) == 0);

    struct vimg_iso_create_params p;
    vimg_iso_create_params_init(&p);
    p.volume_id = "ROUNDTRIP";
    p.source_date_epoch = 1500000000;
    CHECK_EQ(vimg_iso_create(out, src, &p), 0);
    CHECK_EQ(vimg_iso_create(out2, src, &p), 0);
    size_t la, lb;
    uint8_t *da = slurp(out, &la), *db = slurp(out2, &lb);
    CHECK(da && db && la == lb && la % ISO_SECTOR_SIZE == 0 &&
          !memcmp(da, db, la));
    free(da);
    free(db);

    struct vimg_image *img = vimg_open(out, NULL);
    struct vimg_iso *iso = img ? vimg_iso_open(img) : NULL;
    CHECK(iso != NULL);
    if (iso) {
        struct vimg_iso_stat st;
        char buf[64];
        CHECK_EQ(vimg_iso_stat(iso, "/sub/hello.txt", &st), 0);
        CHECK(st.type == VIMG_ISO_FILE && st.size == 13 &&
              (st.mode & 07777) == 0640 && st.nlink == 2 && st.rock_ridge);
        CHECK_EQ(st.mtime, 1000000000);
        CHECK_EQ(vimg_iso_read(iso, "/sub/hello.txt", buf, sizeof buf, 0),
                 13);
        CHECK(!memcmp(buf, "hello, world\n", 13));
        CHECK_EQ(vimg_iso_stat(iso, "/hard", &st), 0);
        CHECK(st.nlink == 2 && st.size == 13);
        /* Later than the epoch: clamped. */
        CHECK_EQ(vimg_iso_stat(iso, "/Long File Name With Spaces.data",
                               &st), 0);
        CHECK_EQ(st.mtime, 1500000000);
        CHECK_EQ(vimg_iso_stat(iso, "/sub", &st), 0);
        CHECK(st.type == VIMG_ISO_DIRECTORY && (st.mode & 07777) == 0700);
        CHECK_EQ(vimg_iso_stat(iso, "/sub/link", &st), 0);
        CHECK(st.type == VIMG_ISO_SYMLINK && st.target &&
              !strcmp(st.target, "../Long File Name With Spaces.data"));
        vimg_iso_close(iso);
    }
    vimg_close(img);

    /* A failure leaves nothing behind: the output folder is missing. */
    snprintf(path, sizeof path, "%s/missing/c.iso", scratch);
    CHECK_EQ(vimg_iso_create(path, src, &p), -1);
    CHECK_ERROR(ENOENT, path);
    snprintf(path, sizeof path, "%s/missing", scratch);
    CHECK(access(path, F_OK) != 0);
}

int main(void)
{
    test_names();
    test_symlink_entries();
    test_pack();
    test_dates();
    test_catalog();
    test_bad_params();
    snprintf(scratch, sizeof scratch, "/tmp/vimg-iso-write.XXXXXX");
    CHECK(mkdtemp(scratch) != NULL);
    test_round_trip();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
