/* Messages, argument parsing helpers and human/JSON output. */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at P (RFC 3629: no overlong forms,
 * surrogates or code points past U+10FFFF), or 0. */
static size_t utf8_length(const unsigned char *p)
{
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        lo = p[0] == 0xE0 ? 0xA0 : 0x80;
        hi = p[0] == 0xED ? 0x9F : 0xBF;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        lo = p[0] == 0xF0 ? 0x90 : 0x80;
        hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
}

void print_untrusted(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = *p < 0x80 ? 1 : utf8_length(p);
        /* C0 controls, DEL, C1 controls (U+0080..U+009F) and stray
         * bytes, which terminals may take as controls too. */
        bool show = n == 0 || *p < 0x20 || *p == 0x7F ||
                    (n == 2 && p[0] == 0xC2 && p[1] < 0xA0);
        n = n ? n : 1;
        for (size_t i = 0; i < n; i++) {
            if (show) {
                fprintf(f, "\\x%02x", p[i]);
            } else {
                fputc(p[i], f);
            }
        }
        p += n;
    }
}

int print_json_string(FILE *f, const char *s)
{
    char *q = vimg_json_quote(s);

    if (!q) {
        return -1;
    }
    fputs(q, f);
    free(q);
    return 0;
}

int fail(const char *fmt, ...)
{
    va_list ap, again;
    char *msg;

    /* Messages carry names from images: shown as print_untrusted does. */
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    fputs("vimg: ", stderr);
    if (n >= 0 && (msg = malloc((size_t)n + 1))) {
        vsnprintf(msg, (size_t)n + 1, fmt, again);
        print_untrusted(stderr, msg);
        free(msg);
    } else {
        fputs("out of memory", stderr);
    }
    va_end(again);
    fputc('\n', stderr);
    return 1;
}

int fail_lib(void)
{
    const char *m = vimg_get_error();
    return fail("%s", m ? m : "unknown error");
}

int usage(const struct command *c, bool error)
{
    if (error) {
        return usage_error(c, "wrong number of arguments");
    }
    fputs(c->usage, stdout);
    return 0;
}

int usage_error(const struct command *c, const char *problem)
{
    /* The problem, then the whole usage: every argument and option the
     * command takes, SOURCE and TARGET included. */
    fail("%s", problem);
    fputs(c->usage, stderr);
    return 1;
}

int parse_output(const char *arg, enum output_format *out)
{
    if (strcmp(arg, "human") == 0) {
        *out = OUTPUT_HUMAN;
    } else if (strcmp(arg, "json") == 0) {
        *out = OUTPUT_JSON;
    } else {
        return fail("--output must be 'human' or 'json', not '%s'", arg);
    }
    return 0;
}

int parse_cache(const char *arg, unsigned *open_flags)
{
    static const char *const modes[] = { "writeback", "unsafe",
                                         "writethrough", "none",
                                         "directsync" };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(arg, modes[i]) == 0) {
            *open_flags &= ~(unsigned)(VIMG_OPEN_NOCACHE |
                                       VIMG_OPEN_NO_FLUSH);
            if (i == 1) {
                *open_flags |= VIMG_OPEN_NO_FLUSH;
            } else if (i >= 3) {
                *open_flags |= VIMG_OPEN_NOCACHE;
            }
            return 0;
        }
    }
    return fail("invalid cache mode '%s' (use writeback, unsafe, "
                "writethrough, none or directsync)", arg);
}

int parse_size_arg(const char *what, const char *arg, uint64_t *out)
{
    if (vimg_parse_size(arg, out) < 0) {
        return fail("invalid %s '%s': expected a non-negative size with an "
                    "optional k, M, G, T, P or E suffix", what, arg);
    }
    return 0;
}

int parse_rate(const char *arg, uint64_t *out)
{
    if (vimg_parse_size(arg, out) < 0) {
        return fail("Invalid rate limit specified. You may use k, M, G, T, "
                    "P or E suffixes for kilobytes, megabytes, gigabytes, "
                    "terabytes, petabytes and exabytes.");
    }
    return 0;
}

int parse_option_list(const char *arg, char **acc)
{
    size_t len = strlen(arg), trailing = 0;

    /* qemu-img's rule for each -o: not empty, no leading comma, no
     * unescaped trailing one (a lost value); ",," escapes a comma. */
    while (trailing < len && arg[len - 1 - trailing] == ',') {
        trailing++;
    }
    if (!*arg || arg[0] == ',' || trailing % 2) {
        return fail("Invalid option list: %s", arg);
    }
    /* Several -o are one list, joined with commas as qemu-img joins them. */
    char *joined = NULL;
    if (asprintf(&joined, "%s%s%s", *acc ? *acc : "", *acc ? "," : "",
                 arg) < 0) {
        return fail("out of memory");
    }
    free(*acc);
    *acc = joined;
    return 0;
}

bool has_option_key(const char *opts, const char *key)
{
    const char *p = opts;
    size_t klen = strlen(key);

    while (p && *p) {
        size_t n = 0;
        while (p[n] && p[n] != '=' && (p[n] != ',' || p[n + 1] == ',')) {
            n += p[n] == ',' ? 2 : 1;
        }
        if (n == klen && strncmp(p, key, n) == 0) {
            return true;
        }
        /* On to the next item, past an unescaped comma. */
        for (p += n; *p; p++) {
            if (*p == ',' && p[1] == ',') {
                p++;
            } else if (*p == ',') {
                p++;
                break;
            }
        }
    }
    return false;
}

bool has_help_option(const char *opts)
{
    return has_option_key(opts, "help") || has_option_key(opts, "?");
}

static int compare_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int print_options_help(const char *format, const char *filename)
{
    static const char *const types[][2] = {
        { "size", "size" }, { "bool", "bool (on/off)" }, { "str", "str" },
        { "num", "num" },
    };
    char *text = vimg_create_options_help(format);
    char *lines[64];
    size_t n = 0;

    if (!text) {
        return fail_lib();
    }
    /* "name\ttype\thelp" lines, shown as qemu-img shows its options. */
    for (char *save = NULL, *l = strtok_r(text, "\n", &save);
         l && n < sizeof lines / sizeof lines[0];
         l = strtok_r(NULL, "\n", &save)) {
        char *type = strchr(l, '\t'), *help = type ? strchr(type + 1, '\t')
                                                   : NULL;
        if (!help) {
            continue;
        }
        *type++ = '\0';
        *help++ = '\0';
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            if (!strncmp(type, types[i][0], strlen(types[i][0]))) {
                type = (char *)types[i][1];
            }
        }
        int w = (int)strlen(l) + (int)strlen(type) + 5; /* "  =<>" */
        if (asprintf(&lines[n], "  %s=<%s>%*s - %s", l, type,
                     w < 24 ? 24 - w : 0, "", help) < 0) {
            break;
        }
        n++;
    }
    free(text);
    qsort(lines, n, sizeof lines[0], compare_lines);
    if (filename) {
        printf("Supported options:\n");
    } else {
        printf("Supported %s options:\n", format);
    }
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
    if (!filename) {
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    return 0;
}

void format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi",
                                            "Ei" };
    int exp;

    /* Pick the unit so that the number shown is below 1000 (qemu-img). */
    frexp((double)bytes / (1000.0 / 1024.0), &exp);
    int i = (exp - 1) / 10;
    if (i < 0) {
        i = 0;
    }
    if (i > 6) {
        i = 6;
    }
    double div = (double)(UINT64_C(1) << (i * 10));
    snprintf(buf, len, "%0.3g %sB", (double)bytes / div, suffixes[i]);
}

static void print_key(FILE *f, const char *key, int indent)
{
    fprintf(f, "%*s", indent, "");
    for (const char *p = key; *p; p++) {
        fputc(*p == '-' ? ' ' : *p, f);
    }
}

static void print_scalar(FILE *f, const struct vimg_value *v)
{
    switch (vimg_value_type(v)) {
    case VIMG_VALUE_BOOL:
        fputs(vimg_value_bool(v) ? "true" : "false", f);
        break;
    case VIMG_VALUE_INT:
        fprintf(f, "%lld", (long long)vimg_value_int(v));
        break;
    case VIMG_VALUE_STRING:
        print_untrusted(f, vimg_value_string(v));
        break;
    default:
        fputs("null", f);
    }
}

void print_human_value(FILE *f, const struct vimg_value *v, int indent)
{
    enum vimg_value_type t = vimg_value_type(v);
    for (size_t i = 0; i < vimg_value_count(v); i++) {
        const struct vimg_value *c = vimg_value_at(v, i);
        char idx[32];
        const char *key = vimg_value_key_at(v, i);
        if (t == VIMG_VALUE_ARRAY) {
            snprintf(idx, sizeof idx, "[%zu]", i);
            key = idx;
        }
        print_key(f, key, indent);
        enum vimg_value_type ct = vimg_value_type(c);
        if (ct == VIMG_VALUE_OBJECT || ct == VIMG_VALUE_ARRAY) {
            fputs(":\n", f);
            print_human_value(f, c, indent + 4);
        } else {
            fputs(": ", f);
            print_scalar(f, c);
            fputc('\n', f);
        }
    }
}

int print_json(const struct vimg_value *v)
{
    char *s = vimg_value_to_json(v);
    if (!s) {
        return fail_lib();
    }
    puts(s);
    free(s);
    return 0;
}
