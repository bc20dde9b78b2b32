/* Size strings and -o option parsing. */
#include "common/base64.h"
#include "internal.h"
#include "test.h"

static const struct vimg_opt_desc desc[] = {
    { "size", VIMG_OPT_SIZE, "" },
    { "lazy_refcounts", VIMG_OPT_BOOL, "" },
    { "compat", VIMG_OPT_STRING, "" },
    { "refcount_bits", VIMG_OPT_NUMBER, "" },
    { NULL, 0, NULL },
};

int main(void)
{
    uint64_t v;

    CHECK(vimg_parse_size("0", &v) == 0 && v == 0);
    CHECK(vimg_parse_size("512", &v) == 0 && v == 512);
    CHECK(vimg_parse_size("0x10", &v) == 0 && v == 16);
    CHECK(vimg_parse_size("0XfF", &v) == 0 && v == 255);
    CHECK(vimg_parse_size("0x1k", &v) == 0 && v == 1024);
    CHECK_EQ(vimg_parse_size("0x1.5k", &v), -EINVAL);
    CHECK_EQ(vimg_parse_size("0x", &v), -EINVAL);
    CHECK_EQ(vimg_parse_size("0x10000000000000000", &v), -ERANGE);
    CHECK_EQ(vimg_parse_size("0x8000000000000000", &v), -ERANGE);
    CHECK(vimg_parse_size("64k", &v) == 0 && v == 65536);
    CHECK(vimg_parse_size("1M", &v) == 0 && v == 1048576);
    CHECK(vimg_parse_size("16G", &v) == 0 && v == 16ULL << 30);
    CHECK(vimg_parse_size("64T", &v) == 0 && v == 64ULL << 40);
    CHECK(vimg_parse_size("1.5G", &v) == 0 && v == 3ULL << 29);
    CHECK(vimg_parse_size("100b", &v) == 0 && v == 100);
    CHECK_EQ(vimg_parse_size("-1", &v), -EINVAL);
    CHECK_EQ(vimg_parse_size("", &v), -EINVAL);
    CHECK_EQ(vimg_parse_size("12x", &v), -EINVAL);
    CHECK_EQ(vimg_parse_size("1G2", &v), -EINVAL);
    CHECK_EQ(vimg_parse_size("99999999999999999999", &v), -ERANGE);
    CHECK_EQ(vimg_parse_size("9E", &v), -ERANGE);       /* > INT64_MAX */
    CHECK_EQ(vimg_parse_size("16777216T", &v), -ERANGE);
    CHECK_EQ(vimg_parse_size("0.5", &v), -EINVAL);      /* half a byte */

    struct vimg_opts o;
    CHECK_EQ(vimg_internal_opts_parse("size=1M,lazy_refcounts,compat=1.1",
                                      desc, "x.img", &o), 0);
    CHECK_EQ(o.count, 3);
    CHECK(vimg_internal_opts_get_size(&o, "size", 0, &v) == 0 &&
          v == 1048576);
    bool b = false;
    CHECK(vimg_internal_opts_get_bool(&o, "lazy_refcounts", false, &b) == 0 &&
          b);
    CHECK(!strcmp(vimg_internal_opts_get(&o, "compat", ""), "1.1"));
    CHECK(vimg_internal_opts_get(&o, "refcount_bits", NULL) == NULL);
    vimg_internal_opts_free(&o);

    /* ",," escapes a comma inside a value. */
    CHECK_EQ(vimg_internal_opts_parse("compat=a,,b", desc, "x", &o), 0);
    CHECK(!strcmp(vimg_internal_opts_get(&o, "compat", ""), "a,b"));
    vimg_internal_opts_free(&o);

    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse("bogus=1", desc, "x.img", &o), -EINVAL);
    CHECK_ERROR(EINVAL, "x.img: invalid parameter 'bogus'");
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse("size=lots", desc, "x.img", &o),
             -EINVAL);
    CHECK_ERROR(EINVAL, "x.img: parameter 'size' expects a size");
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse("lazy_refcounts=maybe", desc, "x", &o),
             -EINVAL);
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse("refcount_bits=-3", desc, "x", &o),
             -EINVAL);
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse("compat", desc, "x", &o), -EINVAL);

    /* Empty items are refused as qemu-img refuses them; ",," is an
     * escaped comma, so an even run of trailing commas is a value. */
    static const char *const bad_lists[] = { ",", ",,", ",size=1M",
                                             "size=1M,", "size=1M,,,",
                                             "compat=a,,b," };
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++) {
        vimg_internal_error_clear();
        CHECK_EQ(vimg_internal_opts_parse(bad_lists[i], desc, "x.img", &o),
                 -EINVAL);
        CHECK_ERROR(EINVAL, "x.img: Invalid option list: ");
    }
    CHECK_EQ(vimg_internal_opts_parse("compat=a,,", desc, "x", &o), 0);
    CHECK(!strcmp(vimg_internal_opts_get(&o, "compat", ""), "a,"));
    vimg_internal_opts_free(&o);
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse("=", desc, "x.img", &o), -EINVAL);
    CHECK_ERROR(EINVAL, "x.img: invalid parameter ''");
    CHECK_EQ(vimg_internal_opts_parse(NULL, desc, "x.img", &o), 0);
    CHECK_EQ(o.count, 0);
    CHECK_EQ(vimg_internal_opts_parse("", desc, "x.img", &o), 0);
    CHECK_EQ(o.count, 0);

    /* A protocol's creation options join the format's (rbd's object
     * size beside raw's); a key both know is checked as DESC says. */
    static const struct vimg_opt_desc extra[] = {
        { "cluster_size", VIMG_OPT_SIZE, "" },
        { "compat", VIMG_OPT_SIZE, "" },
        { NULL, 0, NULL },
    };
    CHECK_EQ(vimg_internal_opts_parse_with("size=1M,cluster_size=64k,"
                                           "compat=x", desc, extra, "x",
                                           &o), 0);
    CHECK(vimg_internal_opts_get_size(&o, "cluster_size", 0, &v) == 0 &&
          v == 65536);
    vimg_internal_opts_free(&o);
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse_with("cluster_size=big", desc, extra,
                                           "x.img", &o), -EINVAL);
    CHECK_ERROR(EINVAL, "x.img: parameter 'cluster_size' expects a size");
    vimg_internal_error_clear();
    CHECK_EQ(vimg_internal_opts_parse_with("bogus=1", desc, extra, "x.img",
                                           &o), -EINVAL);
    CHECK_ERROR(EINVAL, "x.img: invalid parameter 'bogus'");

    enum vimg_prealloc pa;
    struct vimg_opts empty = { 0 };
    CHECK(vimg_internal_opts_get_prealloc(&empty, &pa) == 0 &&
          pa == VIMG_PREALLOC_OFF);

    /* "file." items go to the protocol, without the prefix; escaped
     * commas stay escaped on both sides. */
    char *with, *without;
    CHECK(vimg_internal_opts_split("a=1,file.encrypt.format=luks,b=x,,y,"
                                   "file.k=p,,q", "file.", &with,
                                   &without) == 0);
    CHECK(strcmp(with, "encrypt.format=luks,k=p,,q") == 0);
    CHECK(strcmp(without, "a=1,b=x,,y") == 0);
    free(with);
    free(without);
    CHECK(vimg_internal_opts_split(NULL, "file.", &with, &without) == 0);
    CHECK(!*with && !*without);
    free(with);
    free(without);

    /* A protocol's own -o items: those its table has and the format's
     * does not (qcow2 keeps encrypt.format), and the option list a new
     * image's format opens with, without them. */
    static const struct vimg_opt_desc proto[] = {
        { "compat", VIMG_OPT_STRING, "" },
        { "encrypt.format", VIMG_OPT_STRING, "" },
        { "encrypt.key-secret", VIMG_OPT_STRING, "" },
        { NULL, 0, NULL },
    };
    struct vimg_opts all, picked;
    CHECK(vimg_internal_opts_parse_with("compat=1.1,encrypt.format=luks,"
                                        "encrypt.key-secret=s0,size=1M",
                                        desc, proto, "t", &all) == 0);
    CHECK(vimg_internal_opts_pick(&all, proto, desc, &picked) == 0);
    CHECK_EQ(picked.count, 2);
    CHECK(!strcmp(vimg_internal_opts_get(&picked, "encrypt.format", ""),
                  "luks"));
    CHECK(!vimg_internal_opts_get(&picked, "compat", NULL));
    char *rest = vimg_internal_opts_drop("encrypt.key-secret=s0,a=x,,y,"
                                         "encrypt.format,b=2", &picked);
    CHECK(rest && !strcmp(rest, "a=x,,y,b=2"));
    free(rest);
    rest = vimg_internal_opts_drop(NULL, &picked);
    CHECK(rest && !*rest);
    free(rest);
    vimg_internal_opts_free(&picked);
    vimg_internal_opts_free(&all);

    /* Ceph's cephx keys are the secret's bytes in base64. */
    char b64[BASE64_LEN(5) + 1];
    base64_encode((const uint8_t *)"hello", 5, b64);
    CHECK(!strcmp(b64, "aGVsbG8="));
    base64_encode((const uint8_t *)"hell", 4, b64);
    CHECK(!strcmp(b64, "aGVsbA=="));
    base64_encode((const uint8_t *)"hel", 3, b64);
    CHECK(!strcmp(b64, "aGVs"));
    base64_encode((const uint8_t *)"", 0, b64);
    CHECK(!*b64);
    TEST_MAIN_END();
}
