/* Error paths of opening and creating: exact errno and message prefix. */
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

int main(void)
{
    char dir[] = "/tmp/vimg-test-errors-XXXXXX";
    char path[256];
    CHECK(mkdtemp(dir) != NULL);

    snprintf(path, sizeof path, "%s/missing.img", dir);
    CHECK(vimg_open(path, NULL) == NULL);
    CHECK_EQ(vimg_get_errno(), ENOENT);
    CHECK(strstr(vimg_get_error(), "missing.img: Could not open") != NULL);

    CHECK(vimg_open(dir, NULL) == NULL);
    CHECK_EQ(vimg_get_errno(), EISDIR);

    /* nbd:// names reach a server (none listens on port 1); other
     * protocol names, including libnbd's that run commands, are refused. */
    CHECK(vimg_open("nbd://127.0.0.1:1/x", NULL) == NULL);
    CHECK_ERROR(ECONNREFUSED, "nbd://127.0.0.1:1/x: cannot connect");
    CHECK(vimg_open("nbd+ssh://host/x", NULL) == NULL);
    CHECK_ERROR(ENOTSUP, "nbd+ssh://host/x: protocol names are not");
    CHECK(vimg_open("http://127.0.0.1:10809/x", NULL) == NULL);
    CHECK_ERROR(ENOTSUP, "http://127.0.0.1:10809/x: protocol names are not");
    CHECK(vimg_open("json:{\"file\":\"x\"}", NULL) == NULL);
    CHECK_EQ(vimg_get_errno(), ENOTSUP);

    struct vimg_open_params bad = { .format = "nosuch" };
    snprintf(path, sizeof path, "%s/a.img", dir);
    struct vimg_create_params cp = { .format = "raw", .size = 65536,
                                     .size_given = true };
    CHECK_EQ(vimg_create(path, &cp), 0);
    CHECK(vimg_get_error() == NULL);  /* success clears the slot */
    CHECK(vimg_open(path, &bad) == NULL);
    CHECK_ERROR(EINVAL, "");
    CHECK(strstr(vimg_get_error(), "unknown file format 'nosuch'") != NULL);

    struct vimg_open_params rw_probe = { .flags = VIMG_OPEN_RDWR };
    CHECK(vimg_open(path, &rw_probe) == NULL);
    CHECK_EQ(vimg_get_errno(), EPERM);

    struct vimg_open_params us = { .flags = VIMG_OPEN_RDWR |
                                            VIMG_OPEN_FORCE_SHARE };
    CHECK(vimg_open(path, &us) == NULL);
    CHECK_EQ(vimg_get_errno(), EINVAL);

    /* Create failures leave nothing behind. */
    cp.options = "preallocation=sideways";
    snprintf(path, sizeof path, "%s/b.img", dir);
    CHECK_EQ(vimg_create(path, &cp), -1);
    CHECK_ERROR(EINVAL, "invalid preallocation mode 'sideways'");
    CHECK(access(path, F_OK) != 0);
    cp.options = "nonsense=1";
    CHECK_EQ(vimg_create(path, &cp), -1);
    CHECK_ERROR(EINVAL, "");
    cp.options = NULL;
    cp.size_given = false;
    CHECK_EQ(vimg_create(path, &cp), -1);
    CHECK(strstr(vimg_get_error(), "needs a size") != NULL);
    cp.size_given = true;
    cp.format = "nosuch";
    CHECK_EQ(vimg_create(path, &cp), -1);
    CHECK(access(path, F_OK) != 0);

    /* No stray temporary files in the folder. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    TEST_MAIN_END();
}
