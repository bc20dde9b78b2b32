/* Info trees and their JSON. */
#include "internal.h"
#include "test.h"

int main(void)
{
    struct vimg_value *o = vimg_internal_value_new(VIMG_VALUE_OBJECT);
    struct vimg_value *a = vimg_internal_value_new(VIMG_VALUE_ARRAY);
    CHECK(o && a);
    CHECK_EQ(vimg_internal_value_set_int(o, "virtual-size", 1048576), 0);
    CHECK_EQ(vimg_internal_value_set_str(o, "filename", "a \"b\"\n"), 0);
    CHECK_EQ(vimg_internal_value_set_bool(o, "dirty-flag", false), 0);
    CHECK_EQ(vimg_internal_value_append(a, vimg_internal_value_int(1)), 0);
    CHECK_EQ(vimg_internal_value_add(o, "list", a), 0);

    CHECK_EQ(vimg_value_count(o), 4);
    CHECK_EQ(vimg_value_int(vimg_value_get(o, "virtual-size")), 1048576);
    CHECK(!strcmp(vimg_value_key_at(o, 1), "filename"));
    CHECK(vimg_value_get(o, "missing") == NULL);
    CHECK_EQ(vimg_value_type(vimg_value_get(o, "list")), VIMG_VALUE_ARRAY);

    char *json = vimg_value_to_json(o);
    CHECK(json && !strcmp(json,
        "{\n"
        "    \"virtual-size\": 1048576,\n"
        "    \"filename\": \"a \\\"b\\\"\\n\",\n"
        "    \"dirty-flag\": false,\n"
        "    \"list\": [\n"
        "        1\n"
        "    ]\n"
        "}"));
    free(json);
    vimg_value_free(o);
    TEST_MAIN_END();
}
