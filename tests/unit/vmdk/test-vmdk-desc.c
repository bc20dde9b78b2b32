/* The VMDK descriptor grammar on exactly-sized buffers: what VMware, QEMU
 * and open-vmdk write is accepted; every line outside the grammar, each
 * cap, and extent names the open policy forbids are refused with the
 * right errno and a message naming the image and the line. Also the
 * value rewriting used for CID updates. */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/vmdk/vmdk.h"
#include "internal.h"
#include "../test.h"

static struct vimg_image img = { .filename = (char *)"t.vmdk" };

/* Parse TEXT from an exactly-sized heap copy (no terminating NUL). */
static int parse(const char *text, enum vimg_ref_policy refs,
                 struct vmdk_desc *d)
{
    size_t n = strlen(text);
    char *buf = malloc(n ? n : 1);
    memcpy(buf, text, n);
    img.params.refs = refs;
    vimg_internal_error_clear();
    int r = vmdk_desc_parse(&img, buf, n, d);
    free(buf);
    return r;
}

#define HEAD "# Disk DescriptorFile\nversion=1\nCID=fffffffe\n" \
             "parentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n"

static void test_accepts(void)
{
    struct vmdk_desc d;
    /* VMware's own style: CRLF, encoding, quoted DDB, several extents of
     * every supported type, parent hint, comments, blank lines. */
    const char *vmware =
        "# Disk DescriptorFile\r\nversion=1\r\nencoding=\"windows-1252\"\r\n"
        "CID=1a2b3c4d\r\nparentCID=0badf00d\r\nisNativeSnapshot=\"no\"\r\n"
        "createType=\"twoGbMaxExtentSparse\"\r\n"
        "parentFileNameHint=\"base.vmdk\"\r\n\r\n# Extent description\r\n"
        "RW 4192256 SPARSE \"disk-s001.vmdk\"\r\n"
        "RDONLY 100 FLAT \"ro.img\" 2048\r\n"
        "RW 64 ZERO\r\n  RW 8 VMFS \"sub/v.img\"  \r\n\r\n"
        "# The Disk Data Base \r\n#DDB\r\n\r\n"
        "ddb.virtualHWVersion = \"8\"\r\nddb.uuid.image=\"6000 C29a\"\r\n";
    CHECK_EQ(parse(vmware, VIMG_REFS_SAME_DIR, &d), 0);
    CHECK_EQ(d.version, 1);
    CHECK_EQ(d.cid, 0x1a2b3c4d);
    CHECK_EQ(d.parent_cid, 0x0badf00d);
    CHECK(d.create_type && !strcmp(d.create_type, "twoGbMaxExtentSparse"));
    CHECK(d.parent_hint && !strcmp(d.parent_hint, "base.vmdk"));
    CHECK_EQ(d.n_extents, 4);
    if (d.n_extents == 4) {
        CHECK_EQ(d.extents[0].type, VMDK_EXT_SPARSE);
        CHECK_EQ(d.extents[0].sectors, 4192256);
        CHECK(!strcmp(d.extents[0].name, "disk-s001.vmdk"));
        CHECK(d.extents[1].rdonly);
        CHECK_EQ(d.extents[1].offset, 2048);
        CHECK(!strcmp(d.extents[1].type_name, "FLAT"));
        CHECK_EQ(d.extents[2].type, VMDK_EXT_ZERO);
        CHECK(d.extents[2].name == NULL);
        CHECK_EQ(d.extents[3].type, VMDK_EXT_VMFS);
        CHECK(!strcmp(d.extents[3].name, "sub/v.img"));
    }
    vmdk_desc_free(&d);

    /* Embedded text padded with NULs; what follows the first NUL (QEMU's
     * leftovers after a shorter CID) is not read. */
    static const char padded[] = HEAD "RW 8 SPARSE \"a.vmdk\"\n\0\0junk\n\0";
    img.params.refs = VIMG_REFS_FOLLOW;
    char *buf = malloc(sizeof padded - 1);
    memcpy(buf, padded, sizeof padded - 1);
    CHECK_EQ(vmdk_desc_parse(&img, buf, sizeof padded - 1, &d), 0);
    free(buf);
    vmdk_desc_free(&d);

    /* Absolute and ".." names are followed when the policy follows. */
    CHECK_EQ(parse(HEAD "RW 8 FLAT \"/abs/x.img\" 0\n"
                        "RW 8 FLAT \"../y.img\" 0\n",
                   VIMG_REFS_FOLLOW, &d), 0);
    vmdk_desc_free(&d);
}

struct bad {
    const char *body;       /* after HEAD, or a whole text with NO_HEAD */
    int err;
    const char *message;    /* expected message start after "t.vmdk: " */
};

#define NO_HEAD "\x01"

static void test_refuses(void)
{
    static const struct bad cases[] = {
        { "RW 8 SPARSE \"a.vmdk\"\nrm -rf /\n", EINVAL,
          "descriptor line 7: not a header" },
        { "RW 8 FOO \"a.vmdk\"\n", EINVAL,
          "descriptor line 6: unknown extent type 'FOO'" },
        { "NOACCESS 8 FLAT \"a.img\" 0\n", ENOTSUP,
          "descriptor line 6: NOACCESS extents" },
        { "RW 8 VMFSRAW \"a.vmdk\"\n", ENOTSUP,
          "descriptor line 6: VMFSRAW extents" },
        { "RW 8 VMFSRDM \"a.vmdk\"\n", ENOTSUP,
          "descriptor line 6: VMFSRDM extents" },
        { "RW 0 SPARSE \"a.vmdk\"\n", EINVAL,
          "descriptor line 6: invalid extent size" },
        { "RW -8 SPARSE \"a.vmdk\"\n", EINVAL,
          "descriptor line 6: invalid extent size" },
        { "RW 36028797018963968 ZERO\n", EINVAL,
          "descriptor line 6: invalid extent size" },
        { "RW 8 FLAT \"a.img\"\n", EINVAL,
          "descriptor line 6: a FLAT extent needs one offset" },
        { "RW 8 SPARSE \"a.vmdk\" 12\n", EINVAL,
          "descriptor line 6: unexpected text" },
        { "RW 8 SPARSE \"\"\n", EINVAL,
          "descriptor line 6: extent file name missing" },
        { "RW 8 SPARSE \"a.vmdk\n", EINVAL,
          "descriptor line 6: extent file name missing" },
        { "RW 8 ZERO \"a\"\n", EINVAL,
          "descriptor line 6: a ZERO extent has no file" },
        { "RW 8\n", EINVAL, "descriptor line 6: extent line is incomplete" },
        { "RW 8 SPARSE \"/etc/shadow\"\n", EPERM,
          "descriptor line 6: extent file '/etc/shadow' is absolute" },
        { "RW 8 SPARSE \"a/../../b\"\n", EPERM,
          "descriptor line 6: extent file 'a/../../b' is absolute" },
        { "RW 8 ZERO\nversion=1\n", EINVAL,
          "descriptor line 7: header key given twice" },
        { "RW 8 ZERO\nddb.x = unquoted\n", EINVAL,
          "descriptor line 7: malformed value" },
        { "RW 8 ZERO\nfoo=\"a\"b\"\n", EINVAL,
          "descriptor line 7: malformed value" },
        { "RW 8 ZERO\nddb.x = \"\x01\"\n", EINVAL,
          "descriptor line 7: control character" },
        { "", EINVAL, "descriptor names no extents" },
        { NO_HEAD "version=1\nCID=1\nparentCID=1\nRW 8 ZERO\n", EINVAL,
          "descriptor lacks a createType" },
        { NO_HEAD "version=1\nparentCID=1\ncreateType=\"vmfs\"\nRW 8 ZERO\n",
          EINVAL, "descriptor lacks a CID" },
        { NO_HEAD "version=4\n", EINVAL,
          "descriptor line 1: unsupported descriptor version" },
        { NO_HEAD "version=1\nCID=123456789\n", EINVAL,
          "descriptor line 2: invalid content ID" },
        { NO_HEAD "version=1\nCID=zz\n", EINVAL,
          "descriptor line 2: invalid content ID" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad *c = &cases[i];
        char *text;
        if (c->body[0] == NO_HEAD[0]) {
            text = strdup(c->body + 1);
        } else if (asprintf(&text, "%s%s", HEAD, c->body) < 0) {
            text = NULL;
        }
        struct vmdk_desc d;
        char want[200];
        snprintf(want, sizeof want, "t.vmdk: %s", c->message);
        CHECK_EQ(parse(text, VIMG_REFS_SAME_DIR, &d), -c->err);
        CHECK_ERROR(c->err, want);
        free(text);
    }
}

/* The caps: a descriptor above 1 MiB, more than 4096 extents. */
static void test_caps(void)
{
    struct vmdk_desc d;
    size_t n = VMDK_MAX_DESC_BYTES + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    img.params.refs = VIMG_REFS_FOLLOW;
    vimg_internal_error_clear();
    CHECK_EQ(vmdk_desc_parse(&img, big, n, &d), -EFBIG);
    CHECK_ERROR(EFBIG, "t.vmdk: descriptor of 1048577 bytes");
    free(big);

    size_t lines = VMDK_MAX_EXTENTS + 1;
    char *many = malloc(strlen(HEAD) + lines * 10 + 1);
    strcpy(many, HEAD);
    for (size_t i = 0; i < lines; i++) {
        strcat(many, "RW 8 ZERO\n");
    }
    CHECK_EQ(parse(many, VIMG_REFS_FOLLOW, &d), -EFBIG);
    CHECK_ERROR(EFBIG, "t.vmdk: descriptor has more than 4096 extents");
    free(many);
}

static void test_set_value(void)
{
    const char *t0 = "version=1\r\nCID=1c54ea\r\nparentCID=ffffffff\n"
                     "ddb.longContentID = \"abc\"\nddb.CIDx = \"1\"\n";
    char *t = strdup(t0);
    size_t len = strlen(t);
    CHECK_EQ(vmdk_desc_set_value(&t, &len, "CID", "0123abcd"), 0);
    CHECK_EQ(vmdk_desc_set_value(&t, &len, "ddb.longContentID", "\"xyz\""),
             0);
    CHECK(!strcmp(t, "version=1\r\nCID=0123abcd\r\nparentCID=ffffffff\n"
                     "ddb.longContentID = \"xyz\"\nddb.CIDx = \"1\"\n"));
    CHECK_EQ(len, strlen(t));
    CHECK_EQ(vmdk_desc_set_value(&t, &len, "encoding", "x"), -ENOENT);
    free(t);
}

int main(void)
{
    test_accepts();
    test_refuses();
    test_caps();
    test_set_value();
    TEST_MAIN_END();
}
