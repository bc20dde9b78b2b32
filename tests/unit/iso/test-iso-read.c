/* The ISO 9660 reader on hand-built images held in exactly-sized buffers:
 * date decoding, Joliet names, Rock Ridge NM split across a CE area,
 * symlink components, multi-extent files, the errors for CE loops, short
 * records and missing terminators, and which names and symlink targets
 * extraction refuses. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iso/iso-read.h"
#include "vimg/vimg.h"
#include "tests/unit/test.h"

#define SECTORS 40
#define ROOT_LBA 20

static uint8_t img[SECTORS * ISO_SECTOR_SIZE];

static uint8_t *sector(unsigned lba)
{
    return img + (size_t)lba * ISO_SECTOR_SIZE;
}

/* Write a directory record at P; returns its length. */
static size_t record(uint8_t *p, uint32_t lba, uint32_t len, uint8_t flags,
                     const void *name, size_t name_len, const void *su,
                     size_t su_len)
{
    size_t n = iso_dr_system_use_offset((unsigned)name_len) + su_len;
    n += n % 2;
    memset(p, 0, n);
    p[ISO_DR_LENGTH_OFFSET] = (uint8_t)n;
    iso_store_both32(p + ISO_DR_EXTENT_OFFSET, lba);
    iso_store_both32(p + ISO_DR_DATA_LENGTH_OFFSET, len);
    static const uint8_t date[7] = { 120, 1, 2, 3, 4, 5, 4 }; /* +01:00 */
    memcpy(p + ISO_DR_DATE_OFFSET, date, sizeof date);
    p[ISO_DR_FLAGS_OFFSET] = flags;
    iso_store_both16(p + ISO_DR_VOLUME_SEQ_OFFSET, 1);
    p[ISO_DR_NAME_LENGTH_OFFSET] = (uint8_t)name_len;
    memcpy(p + ISO_DR_NAME_OFFSET, name, name_len);
    if (su_len) {
        memcpy(p + iso_dr_system_use_offset((unsigned)name_len), su, su_len);
    }
    return n;
}

static const uint8_t self = 0, parent = 1;

/* A volume with a PVD (and a Joliet SVD when JOLIET), root at ROOT_LBA
 * holding "." (with ROOT_SU) and "..". Returns the offset of the root's
 * next free byte. */
static size_t volume(bool joliet, const void *root_su, size_t root_su_len)
{
    memset(img, 0, sizeof img);
    unsigned lba = ISO_VD_FIRST_LBA;
    uint8_t *pvd = sector(lba++);
    pvd[ISO_VD_TYPE_OFFSET] = ISO_VD_PRIMARY;
    memcpy(pvd + ISO_VD_ID_OFFSET, ISO_VD_ID, ISO_VD_ID_SIZE);
    pvd[ISO_VD_VERSION_OFFSET] = ISO_VD_VERSION;
    memcpy(pvd + ISO_PVD_VOLUME_ID_OFFSET, "UNIT", 4);
    iso_store_both32(pvd + ISO_PVD_VOLUME_SPACE_SIZE_OFFSET, SECTORS);
    iso_store_both16(pvd + ISO_PVD_BLOCK_SIZE_OFFSET, ISO_SECTOR_SIZE);
    record(pvd + ISO_PVD_ROOT_DIR_RECORD_OFFSET, ROOT_LBA, ISO_SECTOR_SIZE,
           ISO_DR_FLAG_DIRECTORY, &self, 1, NULL, 0);
    if (joliet) {
        uint8_t *svd = sector(lba++);
        memcpy(svd, pvd, ISO_SECTOR_SIZE);
        svd[ISO_VD_TYPE_OFFSET] = ISO_VD_SUPPLEMENTARY;
        memcpy(svd + ISO_SVD_ESCAPE_SEQUENCES_OFFSET,
               ISO_JOLIET_ESCAPE_LEVEL3, 3);
        record(svd + ISO_PVD_ROOT_DIR_RECORD_OFFSET, ROOT_LBA + 1,
               ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY, &self, 1, NULL, 0);
        uint8_t *jr = sector(ROOT_LBA + 1);
        size_t o = record(jr, ROOT_LBA + 1, ISO_SECTOR_SIZE,
                          ISO_DR_FLAG_DIRECTORY, &self, 1, NULL, 0);
        record(jr + o, ROOT_LBA + 1, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY,
               &parent, 1, NULL, 0);
    }
    uint8_t *term = sector(lba);
    term[ISO_VD_TYPE_OFFSET] = ISO_VD_TERMINATOR;
    memcpy(term + ISO_VD_ID_OFFSET, ISO_VD_ID, ISO_VD_ID_SIZE);
    uint8_t *root = sector(ROOT_LBA);
    size_t o = record(root, ROOT_LBA, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY,
                      &self, 1, root_su, root_su_len);
    return o + record(root + o, ROOT_LBA, ISO_SECTOR_SIZE,
                      ISO_DR_FLAG_DIRECTORY, &parent, 1, NULL, 0);
}

static struct vimg_image *open_img(void)
{
    struct vimg_open_params p = { .format = "raw" };
    struct vimg_image *i = vimg_open_buffer(img, sizeof img, "unit.iso", &p);
    CHECK(i != NULL);
    return i;
}

static const uint8_t sp_rr[] = {
    'S', 'P', 7, 1, 0xBE, 0xEF, 0,
    'R', 'R', 5, 1, 0x89,
};

struct names {
    char buf[512];
};

static int collect(void *opaque, const char *path,
                   const struct vimg_iso_stat *st)
{
    struct names *n = opaque;
    (void)st;
    strncat(n->buf, path, sizeof n->buf - strlen(n->buf) - 2);
    strcat(n->buf, "|");
    return 0;
}

static void test_dates(void)
{
    int64_t t;
    int off;
    static const uint8_t d7[7] = { 70, 1, 1, 0, 0, 0, 0 };
    static const uint8_t d7b[7] = { 101, 2, 3, 4, 5, 6, (uint8_t)-8 };
    static const uint8_t bad[7] = { 100, 13, 1, 0, 0, 0, 0 };

    CHECK(iso_dir_date(d7, &t));
    CHECK_EQ(t, 0);
    CHECK(iso_dir_date(d7b, &t)); /* 2001-02-03 04:05:06 at -02:00 */
    CHECK_EQ(t, 981173106 + 2 * 3600);
    CHECK(!iso_dir_date(bad, &t));
    CHECK(iso_vol_date((const uint8_t *)"2024022912000000\x04", &t, &off));
    CHECK_EQ(t, 1709208000 - 3600);
    CHECK_EQ(off, 60);
    CHECK(!iso_vol_date((const uint8_t *)"0000000000000000", &t, &off));
    CHECK(!iso_vol_date((const uint8_t *)"20241301000000000", &t, &off));
}

static void test_joliet(void)
{
    /* "café;1" and U+1F600 as a surrogate pair, in UCS-2BE. */
    static const uint8_t name[] = { 0, 'c', 0, 'a', 0, 'f', 0, 0xE9,
                                    0xD8, 0x3D, 0xDE, 0x00, 0, ';', 0, '1' };
    char out[64];

    CHECK_EQ(iso_joliet_name(name, sizeof name, out, sizeof out), 0);
    CHECK(!strcmp(out, "caf\xc3\xa9\xf0\x9f\x98\x80"));
    CHECK_EQ(iso_joliet_name(name, 3, out, sizeof out), -EINVAL);

    size_t o = volume(true, NULL, 0);
    (void)o;
    uint8_t *jr = sector(ROOT_LBA + 1);
    size_t jo = 2 * 34;
    record(jr + jo, 30, 5, 0, name, sizeof name, NULL, 0);
    memcpy(sector(30), "hello", 5);
    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    struct names n = { "" };
    CHECK_EQ(vimg_iso_list(iso, "/", true, collect, &n), 0);
    CHECK(!strcmp(n.buf, "/caf\xc3\xa9\xf0\x9f\x98\x80|"));
    char buf[8] = "";
    CHECK_EQ(vimg_iso_read(iso, "caf\xc3\xa9\xf0\x9f\x98\x80", buf,
                           sizeof buf, 1), 4);
    CHECK(!memcmp(buf, "ello", 4));
    vimg_iso_close(iso);
    vimg_close(i);
}

/* NM "long" + CE -> NM "-name" in a continuation area; SL "../a/b". */
static void test_rock_ridge(void)
{
    size_t o = volume(false, sp_rr, sizeof sp_rr);
    uint8_t su[128];
    size_t s = 0;
    memcpy(su + s, "PX\x2c\x01", 4);
    memset(su + s + 4, 0, 40);
    iso_store_both32(su + s + ISO_RR_PX_MODE_OFFSET, S_IFREG | 0640);
    iso_store_both32(su + s + ISO_RR_PX_NLINK_OFFSET, 1);
    iso_store_both32(su + s + ISO_RR_PX_UID_OFFSET, 1000);
    iso_store_both32(su + s + ISO_RR_PX_GID_OFFSET, 100);
    s += 44;
    memcpy(su + s, "NM\x09\x01\x01long", 9);
    s += 9;
    uint8_t ce[28] = { 'C', 'E', 28, 1 };
    iso_store_both32(ce + ISO_SUSP_CE_BLOCK_OFFSET, 31);
    iso_store_both32(ce + ISO_SUSP_CE_OFFSET_OFFSET, 100);
    iso_store_both32(ce + ISO_SUSP_CE_LENGTH_OFFSET, 10);
    uint8_t su2[128];
    memcpy(su2, su, s);
    memcpy(su2 + s, ce, 28);
    uint8_t *root = sector(ROOT_LBA);
    o += record(root + o, 30, 3, 0, "LONG.;1", 7, su2, s + 28);
    memcpy(sector(31) + 100, "NM\x0a\x01\x00-name", 10);
    memcpy(sector(30), "abc", 3);
    /* A symlink: PX, then SL with components "..", "a", "b". */
    uint8_t sl[ISO_RR_PX_LENGTH_OLD + 13] = { 'P', 'X', 36, 1 };
    iso_store_both32(sl + ISO_RR_PX_MODE_OFFSET, S_IFLNK | 0777);
    iso_store_both32(sl + ISO_RR_PX_NLINK_OFFSET, 1);
    memcpy(sl + ISO_RR_PX_LENGTH_OLD, "SL\x0d\x01\x00" "\x04\x00"
           "\x00\x01" "a" "\x00\x01" "b", 13);
    record(root + o, 0, 0, 0, "L;1", 3, sl, sizeof sl);

    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    struct vimg_iso_stat st;
    CHECK_EQ(vimg_iso_stat(iso, "/long-name", &st), 0);
    CHECK(!strcmp(st.name, "long-name"));
    CHECK_EQ(st.mode, S_IFREG | 0640);
    CHECK_EQ(st.uid, 1000);
    CHECK_EQ(st.gid, 100);
    CHECK_EQ(st.size, 3);
    CHECK_EQ(st.mtime, 1577934245 - 3600);
    CHECK(st.rock_ridge);
    CHECK_EQ(vimg_iso_stat(iso, "/L", &st), 0); /* no NM: ISO name */
    CHECK_EQ(st.type, VIMG_ISO_SYMLINK);
    CHECK(st.target && !strcmp(st.target, "../a/b"));
    CHECK_EQ(vimg_iso_stat(iso, "/LONG", &st), -1);
    CHECK_ERROR(ENOENT, "unit.iso: /LONG: no such file");

    /* The continuation area now chains to itself. */
    uint8_t *area = sector(31) + 100;
    memcpy(area + 10, ce, 28);
    iso_store_both32(area + 10 + ISO_SUSP_CE_LENGTH_OFFSET, 38);
    uint8_t *first_ce = memmem(root, ISO_SECTOR_SIZE, "CE\x1c\x01", 4);
    CHECK(first_ce != NULL);
    iso_store_both32(first_ce + ISO_SUSP_CE_LENGTH_OFFSET, 38);
    vimg_iso_close(iso);
    vimg_close(i);
    i = open_img();
    iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    CHECK_EQ(vimg_iso_stat(iso, "/long-name", &st), -1);
    CHECK_ERROR(EINVAL, "unit.iso: /LONG: System Use continuation chain");
    vimg_iso_close(iso);
    vimg_close(i);
}

static void test_multi_extent(void)
{
    size_t o = volume(false, NULL, 0);
    uint8_t *root = sector(ROOT_LBA);
    o += record(root + o, 30, 2048, ISO_DR_FLAG_MULTI_EXTENT, "BIG.;1", 6,
                NULL, 0);
    o += record(root + o, 32, 2048, ISO_DR_FLAG_MULTI_EXTENT, "BIG.;1", 6,
                NULL, 0);
    record(root + o, 35, 10, 0, "BIG.;1", 6, NULL, 0);
    memset(sector(30), 'a', 2048);
    memset(sector(32), 'b', 2048);
    memset(sector(35), 'c', 10);

    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    struct vimg_iso_stat st;
    CHECK_EQ(vimg_iso_stat(iso, "BIG", &st), 0);
    CHECK_EQ(st.size, 4106);
    CHECK_EQ(st.mode, S_IFREG | 0444);
    char buf[8];
    CHECK_EQ(vimg_iso_read(iso, "BIG", buf, sizeof buf, 2044), 8);
    CHECK(!memcmp(buf, "aaaabbbb", 8));
    CHECK_EQ(vimg_iso_read(iso, "BIG", buf, sizeof buf, 4100), 6);
    CHECK(!memcmp(buf, "cccccc", 6));
    CHECK_EQ(vimg_iso_read(iso, "BIG", buf, sizeof buf, 4106), 0);
    struct names n = { "" };
    CHECK_EQ(vimg_iso_list(iso, NULL, false, collect, &n), 0);
    CHECK(!strcmp(n.buf, "/BIG|"));
    vimg_iso_close(iso);
    vimg_close(i);

    /* The last extent goes missing: the run ends at the directory end. */
    memset(root + o, 0, 40);
    i = open_img();
    iso = vimg_iso_open(i);
    CHECK_EQ(vimg_iso_stat(iso, "BIG", &st), -1);
    CHECK_ERROR(EINVAL, "unit.iso: /BIG: multi-extent file is not followed");
    vimg_iso_close(iso);
    vimg_close(i);
}

static void test_bad_records(void)
{
    size_t o = volume(false, NULL, 0);
    uint8_t *root = sector(ROOT_LBA);
    record(root + o, 30, 1, 0, "A;1", 3, NULL, 0);
    root[o] = 20; /* shorter than the 34-byte minimum */
    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    struct names n = { "" };
    CHECK_EQ(vimg_iso_list(iso, "/", true, collect, &n), -1);
    CHECK_ERROR(EINVAL, "unit.iso: directory /: record at byte 68 is 20 "
                "bytes long (shorter than 34)");
    vimg_iso_close(iso);
    vimg_close(i);

    /* A record running past the end of the directory's extent. */
    o = volume(false, NULL, 0);
    record(root + o, 30, 1, 0, "A;1", 3, NULL, 0);
    iso_store_both32(sector(ISO_VD_FIRST_LBA) +
                     ISO_PVD_ROOT_DIR_RECORD_OFFSET +
                     ISO_DR_DATA_LENGTH_OFFSET, 100);
    i = open_img();
    iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    CHECK_EQ(vimg_iso_list(iso, "/", true, collect, &n), -1);
    CHECK_ERROR(EINVAL, "unit.iso: directory /: record at byte 68 is 36 "
                "bytes long (overruns its sector)");
    vimg_iso_close(iso);
    vimg_close(i);

    /* No terminator within the cap. */
    volume(false, NULL, 0);
    for (unsigned s = ISO_VD_FIRST_LBA + 1; s < ROOT_LBA; s++) {
        memcpy(sector(s), sector(ISO_VD_FIRST_LBA), ISO_SECTOR_SIZE);
    }
    i = open_img();
    CHECK(vimg_iso_open(i) == NULL);
    CHECK_ERROR(EINVAL, "unit.iso: ISO 9660 descriptor set ends without a "
                "terminator");
    vimg_close(i);
}


/* System Use bytes for a Rock Ridge entry: PX with MODE, NM NAME, and an
 * SL for TARGET when it is not NULL. Returns the length. */
static size_t rr_su(uint8_t *su, uint32_t mode, const char *name,
                    const char *target)
{
    size_t s = ISO_RR_PX_LENGTH_OLD, nl = strlen(name);
    memset(su, 0, s);
    memcpy(su, "PX\x24\x01", 4);
    iso_store_both32(su + ISO_RR_PX_MODE_OFFSET, mode);
    iso_store_both32(su + ISO_RR_PX_NLINK_OFFSET, 1);
    memcpy(su + s, "NM", 2);
    su[s + 2] = (uint8_t)(ISO_RR_NM_NAME_OFFSET + nl);
    su[s + 3] = 1;
    su[s + 4] = 0;
    memcpy(su + s + ISO_RR_NM_NAME_OFFSET, name, nl);
    s += ISO_RR_NM_NAME_OFFSET + nl;
    if (target) {
        size_t start = s, p = s + ISO_RR_SL_COMPONENTS_OFFSET;
        char copy[128];
        snprintf(copy, sizeof copy, "%s", target);
        if (copy[0] == '/') {
            su[p++] = ISO_RR_SL_ROOT;
            su[p++] = 0;
        }
        for (char *save = NULL, *c = strtok_r(copy, "/", &save); c;
             c = strtok_r(NULL, "/", &save)) {
            bool dot = !strcmp(c, "."), dotdot = !strcmp(c, "..");
            su[p++] = dot ? ISO_RR_SL_CURRENT : dotdot ? ISO_RR_SL_PARENT : 0;
            su[p++] = (uint8_t)(dot || dotdot ? 0 : strlen(c));
            if (!dot && !dotdot) {
                memcpy(su + p, c, strlen(c));
                p += strlen(c);
            }
        }
        memcpy(su + start, "SL", 2);
        su[start + 2] = (uint8_t)(p - start);
        su[start + 3] = 1;
        su[start + 4] = 0;
        s = p;
    }
    return s;
}

/* The error of the last extract_all (closing clears the library's). */
static int saved_errno;
static char saved_msg[512];

/* Extract the whole volume into a fresh folder; returns the result and
 * leaves the folder's name in DIR. */
static int extract_all(char dir[64])
{
    strcpy(dir, "/tmp/vimg-unit-iso.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    int r = vimg_iso_extract(iso, "/", dir);
    saved_errno = vimg_get_errno();
    snprintf(saved_msg, sizeof saved_msg, "%s",
             vimg_get_error() ? vimg_get_error() : "");
    vimg_iso_close(iso);
    vimg_close(i);
    return r;
}

static void remove_tree(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

/* A volume whose root holds one Rock Ridge symlink NAME -> TARGET, or,
 * with IN_DIR, a folder "d" holding it. */
static void symlink_volume(const char *name, const char *target, bool in_dir)
{
    uint8_t su[256];
    size_t o = volume(false, sp_rr, sizeof sp_rr), n;
    uint8_t *dir = sector(ROOT_LBA);
    if (in_dir) {
        n = rr_su(su, S_IFDIR | 0755, "d", NULL);
        record(dir + o, 25, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY, "D", 1,
               su, n);
        dir = sector(25);
        o = record(dir, 25, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY, &self,
                   1, NULL, 0);
        o += record(dir + o, ROOT_LBA, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY,
                    &parent, 1, NULL, 0);
    }
    n = rr_su(su, S_IFLNK | 0777, name, target);
    record(dir + o, 0, 0, 0, "L;1", 3, su, n);
}

static void test_extract(void)
{
    static const struct {
        const char *target;
        bool in_dir, ok;
    } cases[] = {
        { "f", false, true },
        { "./f", false, true },
        { "../f", false, false },
        { "a/../f", false, false },  /* ".." after a name: not provable */
        { "/etc/passwd", false, false },
        { "../f", true, true },
        { "../../f", true, false },
        { "../d/../../f", true, false },
    };
    char dir[64], path[128];

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        symlink_volume("l", cases[c].target, cases[c].in_dir);
        int r = extract_all(dir);
        CHECK_EQ(r, cases[c].ok ? 0 : -1);
        if (!cases[c].ok) {
            CHECK_EQ(saved_errno, EPERM);
            CHECK(!strncmp(saved_msg, "unit.iso: /", 11));
            CHECK(strstr(saved_msg, "refusing symlink"));
        } else {
            char buf[64] = "";
            snprintf(path, sizeof path, "%s/%sl", dir,
                     cases[c].in_dir ? "d/" : "");
            CHECK(readlink(path, buf, sizeof buf - 1) > 0);
            CHECK(!strcmp(buf, cases[c].target));
        }
        remove_tree(dir);
    }

    /* Names that are not one plain path component. */
    static const char *const bad[] = { "..", ".", "a/b" };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        symlink_volume(bad[c], "f", false);
        CHECK_EQ(extract_all(dir), -1);
        CHECK_EQ(saved_errno, EPERM);
        CHECK(!strncmp(saved_msg, "unit.iso: /", 11));
        CHECK(strstr(saved_msg, "refusing to extract an entry"));
        remove_tree(dir);
    }

    /* A file: contents, Rock Ridge mode and the record's mtime. */
    uint8_t su[128];
    size_t o = volume(false, sp_rr, sizeof sp_rr);
    size_t n = rr_su(su, S_IFREG | 0604, "file", NULL);
    record(sector(ROOT_LBA) + o, 30, 5, 0, "FILE.;1", 7, su, n);
    memcpy(sector(30), "data\n", 5);
    CHECK_EQ(extract_all(dir), 0);
    snprintf(path, sizeof path, "%s/file", dir);
    struct stat st;
    CHECK_EQ(lstat(path, &st), 0);
    CHECK_EQ(st.st_mode, S_IFREG | 0604);
    CHECK_EQ(st.st_size, 5);
    CHECK_EQ(st.st_mtime, 1577934245 - 3600);
    /* Extracting again never replaces what is there. */
    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK_EQ(vimg_iso_extract(iso, "/file", dir), -1);
    CHECK_ERROR(EEXIST, "unit.iso: /file: cannot create");
    vimg_iso_close(iso);
    vimg_close(i);
    remove_tree(dir);
}

/* Directories A and B share one extent: each directory extent is entered
 * once per walk, a second visit is an error naming the path, in listings
 * and extractions alike; an extent overlapping an ancestor's is a loop. */
static void test_shared_dirs(void)
{
    size_t o = volume(false, NULL, 0);
    uint8_t *root = sector(ROOT_LBA), *a = sector(25);
    o += record(root + o, 25, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY, "A",
                1, NULL, 0);
    o += record(root + o, 25, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY, "B",
                1, NULL, 0);
    size_t ao = record(a, 25, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY, &self,
                       1, NULL, 0);
    record(a + ao, ROOT_LBA, ISO_SECTOR_SIZE, ISO_DR_FLAG_DIRECTORY,
           &parent, 1, NULL, 0);
    struct vimg_image *i = open_img();
    struct vimg_iso *iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    struct names n = { "" };
    CHECK_EQ(vimg_iso_list(iso, "/", false, collect, &n), 0);
    CHECK(!strcmp(n.buf, "/A|/B|"));
    n.buf[0] = '\0';
    CHECK_EQ(vimg_iso_list(iso, "/", true, collect, &n), -1);
    CHECK_ERROR(EINVAL, "unit.iso: directory /B shares its extent (LBA 25) "
                "with a directory already read");
    CHECK(!strcmp(n.buf, "/A|/B|"));
    /* Listing B alone is fine: the sharing is only seen within a walk. */
    CHECK_EQ(vimg_iso_list(iso, "/B", true, collect, &n), 0);
    vimg_iso_close(iso);
    vimg_close(i);

    char dir[64];
    CHECK_EQ(extract_all(dir), -1);
    CHECK_EQ(saved_errno, EINVAL);
    CHECK(strstr(saved_msg, "unit.iso: directory /B shares its extent"));
    CHECK(strstr(saved_msg, "(1 entry extracted before the error remains "
                            "in "));
    remove_tree(dir);

    /* C's extent starts one sector before the root's and overlaps it:
     * C/C is the directory the walk is inside, a loop. */
    o = volume(false, NULL, 0);
    record(root + o, ROOT_LBA - 1, 2 * ISO_SECTOR_SIZE,
           ISO_DR_FLAG_DIRECTORY, "C", 1, NULL, 0);
    i = open_img();
    iso = vimg_iso_open(i);
    CHECK(iso != NULL);
    n.buf[0] = '\0';
    CHECK_EQ(vimg_iso_list(iso, "/C", true, collect, &n), -1);
    CHECK_ERROR(EINVAL, "unit.iso: directory /C/C points back at an "
                "ancestor (directory loop)");
    vimg_iso_close(iso);
    vimg_close(i);
}

int main(void)
{
    test_dates();
    test_joliet();
    test_rock_ridge();
    test_multi_extent();
    test_bad_records();
    test_extract();
    test_shared_dirs();
    TEST_MAIN_END();
}
