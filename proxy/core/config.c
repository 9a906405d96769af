#include "core/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#include "core/cli.h"

#define CONFIG_MAX_FILE (16u * 1024 * 1024)
#define CONFIG_MAX_DEPTH 64

struct node_line {
    const cJSON *node;
    int line;
};

struct config_doc {
    cJSON *root; /* owned */
    char *name;  /* owned */
    struct node_line *lines; /* owned */
    size_t n_lines, cap_lines;
};

static int remember(struct config_doc *doc, const cJSON *node, int line)
{
    if (doc->n_lines == doc->cap_lines) {
        size_t cap = doc->cap_lines ? doc->cap_lines * 2 : 64;
        struct node_line *l = realloc(doc->lines, cap * sizeof(*l));
        if (!l)
            return -ENOMEM;
        doc->lines = l;
        doc->cap_lines = cap;
    }
    doc->lines[doc->n_lines++] = (struct node_line){node, line};
    return 0;
}

int config_line(const struct config_doc *doc, const struct cJSON *node)
{
    for (size_t i = 0; i < doc->n_lines; i++)
        if (doc->lines[i].node == node)
            return doc->lines[i].line;
    return 0;
}

int config_error(const struct config_doc *doc, const struct cJSON *node, struct config_err *err,
                 const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line = node ? config_line(doc, node) : 0;
    if (line > 0)
        snprintf(err->msg, sizeof(err->msg), "%s:%d: %s", doc->name, line, msg);
    else
        snprintf(err->msg, sizeof(err->msg), "%s: %s", doc->name, msg);
    return -EINVAL;
}

int config_err_set(struct config_err *err, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* YAML 1.2 core schema for plain scalars: null, true/false, numbers;
 * everything else (including on/off/yes/no) stays a string. */
static cJSON *plain_scalar(const char *s, size_t len)
{
    if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return cJSON_CreateNull();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return cJSON_CreateTrue();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return cJSON_CreateFalse();
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if ((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9')) {
        char *end = NULL;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s + len && !errno && isfinite(v))
            return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

struct frame {
    cJSON *node;
    char *key; /* owned: pending mapping key */
};

static int add_child(struct config_doc *doc, struct frame *top, cJSON *child, const char *value,
                     int line, bool *ret_consumed_as_key, struct config_err *err)
{
    *ret_consumed_as_key = false;
    if (cJSON_IsArray(top->node)) {
        cJSON_AddItemToArray(top->node, child);
        return 0;
    }
    if (!top->key) {
        /* This scalar is a key. */
        if (!value) {
            snprintf(err->msg, sizeof(err->msg), "%s:%d: mapping keys must be plain strings",
                     doc->name, line);
            return -EINVAL;
        }
        top->key = strdup(value);
        *ret_consumed_as_key = true;
        return top->key ? 0 : -ENOMEM;
    }
    if (cJSON_GetObjectItemCaseSensitive(top->node, top->key)) {
        snprintf(err->msg, sizeof(err->msg), "%s:%d: duplicate key '%s'", doc->name, line,
                 top->key);
        return -EINVAL;
    }
    cJSON_AddItemToObject(top->node, top->key, child);
    free(top->key);
    top->key = NULL;
    return 0;
}

static int parse_yaml(struct config_doc *doc, const char *text, size_t len, struct config_err *err)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct frame stack[CONFIG_MAX_DEPTH];
    int depth = 0;
    int r = 0;
    bool done = false, have_event = false;

    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(err->msg, sizeof(err->msg), "%s:%zu: %s%s%s", doc->name,
                     parser.problem_mark.line + 1, parser.problem ? parser.problem : "syntax error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
            r = -EINVAL;
            goto fail;
        }
        have_event = true;
        int line = (int)ev.start_mark.line + 1;
        cJSON *node = NULL;
        const char *scalar = NULL;

        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err->msg, sizeof(err->msg), "%s:%d: YAML aliases are not supported",
                     doc->name, line);
            r = -EINVAL;
            goto fail;
        case YAML_SCALAR_EVENT:
            scalar = (const char *)ev.data.scalar.value;
            if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
                node = plain_scalar(scalar, ev.data.scalar.length);
            else
                node = cJSON_CreateString(scalar);
            break;
        case YAML_SEQUENCE_START_EVENT:
            node = cJSON_CreateArray();
            break;
        case YAML_MAPPING_START_EVENT:
            node = cJSON_CreateObject();
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            free(stack[depth].key);
            stack[depth].key = NULL;
            break;
        default:
            break;
        }

        if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
            ev.type == YAML_MAPPING_START_EVENT) {
            if (!node) {
                r = -ENOMEM;
                goto fail;
            }
            bool as_key = false;
            if (depth == 0) {
                if (doc->root) {
                    cJSON_Delete(node);
                    snprintf(err->msg, sizeof(err->msg), "%s:%d: more than one document",
                             doc->name, line);
                    r = -EINVAL;
                    goto fail;
                }
                doc->root = node;
            } else {
                r = add_child(doc, &stack[depth - 1], node,
                              ev.type == YAML_SCALAR_EVENT ? scalar : NULL, line, &as_key, err);
                if (r < 0 || as_key) {
                    cJSON_Delete(node);
                    if (r < 0)
                        goto fail;
                }
            }
            if (!as_key) {
                r = remember(doc, node, line);
                if (r < 0)
                    goto fail;
            }
            if (ev.type != YAML_SCALAR_EVENT) {
                if (depth == CONFIG_MAX_DEPTH) {
                    snprintf(err->msg, sizeof(err->msg), "%s:%d: nested too deeply", doc->name,
                             line);
                    r = -EINVAL;
                    goto fail;
                }
                stack[depth++] = (struct frame){node, NULL};
            }
        }
        yaml_event_delete(&ev);
        have_event = false;
    }
    yaml_parser_delete(&parser);
    if (!doc->root) {
        doc->root = cJSON_CreateObject();
        if (!doc->root)
            return -ENOMEM;
    }
    return 0;
fail:
    if (have_event)
        yaml_event_delete(&ev);
    while (depth > 0)
        free(stack[--depth].key);
    yaml_parser_delete(&parser);
    return r;
}

int config_parse(const char *name, const char *text, size_t len, struct config_doc **ret,
                 struct config_err *err)
{
    struct config_doc *doc = calloc(1, sizeof(*doc));
    int r = -ENOMEM;
    if (!doc)
        goto fail;
    doc->name = strdup(name);
    if (!doc->name)
        goto fail;
    r = parse_yaml(doc, text, len, err);
    if (r < 0)
        goto fail;
    *ret = doc;
    return 0;
fail:
    if (r == -ENOMEM)
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", name);
    config_free(doc);
    return r;
}

int config_load_file(const char *path, struct config_doc **ret, struct config_err *err)
{
    char *text = NULL;
    int r;
    FILE *f = fopen(path, "rb");
    if (!f) {
        r = -errno;
        snprintf(err->msg, sizeof(err->msg), "%s: cannot open: %s", path, strerror(errno));
        return r;
    }
    text = malloc(CONFIG_MAX_FILE + 1);
    if (!text) {
        r = -ENOMEM;
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
        goto fail;
    }
    size_t n = fread(text, 1, CONFIG_MAX_FILE + 1, f);
    if (ferror(f)) {
        r = -EIO;
        snprintf(err->msg, sizeof(err->msg), "%s: read error", path);
        goto fail;
    }
    if (n > CONFIG_MAX_FILE) {
        r = -EFBIG;
        snprintf(err->msg, sizeof(err->msg), "%s: larger than %u bytes", path, CONFIG_MAX_FILE);
        goto fail;
    }
    r = config_parse(path, text, n, ret, err);
fail:
    free(text);
    fclose(f);
    return r;
}

void config_free(struct config_doc *doc)
{
    if (!doc)
        return;
    cJSON_Delete(doc->root);
    free(doc->name);
    free(doc->lines);
    free(doc);
}

const struct cJSON *config_root(const struct config_doc *doc)
{
    return doc->root;
}

const char *config_name(const struct config_doc *doc)
{
    return doc->name;
}

int config_check_keys(const struct config_doc *doc, const struct cJSON *obj,
                      const char *const *allowed, struct config_err *err)
{
    if (!cJSON_IsObject(obj))
        return config_error(doc, obj, err, "expected a mapping");
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(c->string, *a) == 0)
                ok = true;
        if (ok)
            continue;
        char list[300] = "";
        size_t used = 0;
        for (const char *const *a = allowed; *a && used < sizeof(list) - 1; a++) {
            int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", *a);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        return config_error(doc, c, err, "unknown key '%s' (expected one of: %s)", c->string,
                            list);
    }
    return 0;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

int config_get_string(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                      bool required, const char **ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v) {
        if (!required)
            return 0;
        config_error(doc, obj, err, "missing required key '%s'", key);
        return -ENOENT;
    }
    if (!cJSON_IsString(v))
        return config_error(doc, v, err, "'%s' must be a string", key);
    *ret = v->valuestring;
    return 0;
}

int config_get_bool(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                    bool *ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return config_error(doc, v, err, "'%s' must be true or false", key);
    *ret = cJSON_IsTrue(v);
    return 0;
}

int config_get_onoff(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                     bool *ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return 0;
    if (cJSON_IsBool(v)) {
        *ret = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsString(v) && (strcmp(v->valuestring, "on") == 0 || strcmp(v->valuestring, "off") == 0)) {
        *ret = strcmp(v->valuestring, "on") == 0;
        return 0;
    }
    return config_error(doc, v, err, "'%s' must be on or off", key);
}

int config_get_u64(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                   uint64_t min, uint64_t max, uint64_t *ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < (double)min || v->valuedouble > (double)max)
        return config_error(doc, v, err, "'%s' must be an integer from %llu to %llu", key,
                            (unsigned long long)min, (unsigned long long)max);
    *ret = (uint64_t)v->valuedouble;
    return 0;
}

int config_get_double(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                      double min, double max, double *ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max)
        return config_error(doc, v, err, "'%s' must be a number from %g to %g", key, min, max);
    *ret = v->valuedouble;
    return 0;
}

int config_get_duration(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                        usec_t *ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return 0;
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9) {
        *ret = (usec_t)llround(v->valuedouble * 1e6);
        return 0;
    }
    if (cJSON_IsString(v) && cli_duration_value(v->valuestring, ret) == 0)
        return 0;
    return config_error(doc, v, err, "'%s' must be a duration like 500ms, 2s or 1m", key);
}

int config_get_size(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                    uint64_t *ret, struct config_err *err)
{
    const cJSON *v = get(obj, key);
    if (!v)
        return 0;
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) {
        *ret = (uint64_t)v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && cli_size_value(v->valuestring, ret) == 0)
        return 0;
    return config_error(doc, v, err, "'%s' must be a size like 512K, 64M or 1G", key);
}
