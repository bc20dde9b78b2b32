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

    /* Strings as qemu-img 7.2 writes them (seen from qemu-img info of a
     * backing name with these bytes): invalid UTF-8 (FF, FE, a surrogate,
     * U+FFFF, a cut-short sequence) as U+FFFD, C0 80 as U+0000, other
     * non-ASCII as upper-case \u escapes, U+1F600 as a surrogate pair. */
    json = vimg_json_quote("a\xff\xfe" "b\x01" "c\x1b[\x7f\xc3\xa9\xc2\x9b"
                           "\xed\xa0\x80\xc0\x80\xef\xbf\xbf"
                           "\xf0\x9f\x98\x80\"\\\b\f\n\r\t\xe2\x82");
    CHECK(json && !strcmp(json,
        "\"a\\uFFFD\\uFFFDb\\u0001c\\u001B[\\u007F\\u00E9\\u009B\\uFFFD"
        "\\u0000\\uFFFD\\uD83D\\uDE00\\\"\\\\\\b\\f\\n\\r\\t\\uFFFD\""));
    free(json);
    TEST_MAIN_END();
}
