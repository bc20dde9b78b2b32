/* rbd: names as qemu-img writes them: pool, namespace, image, snapshot,
 * :key=value options, backslash escapes; errors name the image; names
 * written back parse to the same parts. */
#include "protocols/rbd.h"
#include "test.h"

static int parse(const char *name, struct vimg_rbd_name *n)
{
    vimg_internal_error_clear();
    return vimg_internal_rbd_parse(name, n);
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* NAME parses to the parts given, and formats back to a name that parses
 * to the same parts. */
static void check_parts(const char *name, const char *pool, const char *ns,
                        const char *image, const char *snap,
                        const char *conf, const char *user)
{
    struct vimg_rbd_name n, again;

    CHECK_EQ(parse(name, &n), 0);
    CHECK(same(n.pool, pool));
    CHECK(same(n.nspace, ns));
    CHECK(same(n.image, image));
    CHECK(same(n.snap, snap));
    CHECK(same(n.conf, conf));
    CHECK(same(n.user, user));
    char *s = vimg_internal_rbd_format(&n);
    CHECK(s != NULL);
    CHECK_EQ(parse(s, &again), 0);
    CHECK(same(again.pool, pool) && same(again.nspace, ns) &&
          same(again.image, image) && same(again.snap, snap) &&
          same(again.conf, conf) && same(again.user, user));
    CHECK_EQ(again.n_opts, n.n_opts);
    for (size_t i = 0; i < n.n_opts && i < again.n_opts; i++) {
        CHECK(same(again.keys[i], n.keys[i]));
        CHECK(same(again.values[i], n.values[i]));
    }
    free(s);
    vimg_internal_rbd_name_free(&again);
    vimg_internal_rbd_name_free(&n);
}

int main(void)
{
    struct vimg_rbd_name n;

    CHECK(vimg_internal_rbd_is_name("rbd:p/i"));
    CHECK(!vimg_internal_rbd_is_name("rbd"));
    CHECK(!vimg_internal_rbd_is_name("./rbd:p/i"));
    CHECK(!vimg_internal_rbd_is_name(NULL));

    check_parts("rbd:pool/img", "pool", "", "img", NULL, NULL, NULL);
    check_parts("rbd:pool/ns/img@snap", "pool", "ns", "img", "snap", NULL,
                NULL);
    check_parts("rbd:pool/img@snap:conf=/etc/c.conf:id=admin", "pool", "",
                "img", "snap", "/etc/c.conf", "admin");
    /* Escapes keep delimiters inside names and values. */
    check_parts("rbd:po\\/ol/im\\:g\\@x", "po/ol", "", "im:g@x", NULL, NULL,
                NULL);
    check_parts("rbd:p/i:conf=/a\\:b@c", "p", "", "i", NULL, "/a:b@c", NULL);
    check_parts("rbd:p/i:conf=a\\\\b", "p", "", "i", NULL, "a\\b", NULL);

    /* Any other key is a Ceph option, in order, values unescaped. */
    CHECK_EQ(parse("rbd:p/i:mon_host=[v2\\:127.0.0.1\\:3300]:"
                   "rbd_cache=false:id=u", &n), 0);
    CHECK_EQ(n.n_opts, 2);
    CHECK(n.n_opts == 2 && !strcmp(n.keys[0], "mon_host") &&
          !strcmp(n.values[0], "[v2:127.0.0.1:3300]") &&
          !strcmp(n.keys[1], "rbd_cache") && !strcmp(n.values[1], "false"));
    CHECK(same(n.user, "u"));
    vimg_internal_rbd_name_free(&n);
    check_parts("rbd:p/i:mon_host=[v2\\:127.0.0.1\\:3300]:a\\=b=c\\:d", "p",
                "", "i", NULL, NULL, NULL);
    /* A later conf= wins, as QEMU's options do. */
    CHECK_EQ(parse("rbd:p/i:conf=a:conf=b", &n), 0);
    CHECK(same(n.conf, "b"));
    vimg_internal_rbd_name_free(&n);

    /* Malformed names: one message naming the image. */
    CHECK_EQ(parse("rbd:img", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "rbd:img: no pool in the name");
    vimg_internal_rbd_name_free(&n);
    CHECK_EQ(parse("rbd:/img", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "rbd:/img: the pool name is empty");
    vimg_internal_rbd_name_free(&n);
    CHECK_EQ(parse("rbd:p/", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "rbd:p/: the image name is empty");
    vimg_internal_rbd_name_free(&n);
    CHECK_EQ(parse("rbd:p/i@", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "rbd:p/i@: the snapshot name is empty");
    vimg_internal_rbd_name_free(&n);
    CHECK_EQ(parse("rbd:p/i:conf", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "rbd:p/i:conf: option 'conf' has no value");
    vimg_internal_rbd_name_free(&n);
    CHECK_EQ(parse("rbd:p/i:=x", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "rbd:p/i:=x: an option has no name");
    vimg_internal_rbd_name_free(&n);
    CHECK_EQ(parse("nbd://x", &n), -EINVAL);
    CHECK_ERROR(EINVAL, "nbd://x: not an rbd: name");
    vimg_internal_rbd_name_free(&n);
    TEST_MAIN_END();
}
