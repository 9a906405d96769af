/* config: loads YAML (or JSON) files into a cJSON tree that remembers the
 * line of every node, so validation errors read "file:line: message".
 * Loading is pure apart from reading the file; trees are immutable after
 * load. Typed getters validate and report through the same errors. */
#ifndef TOKENTAP_CONFIG_H
#define TOKENTAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"

struct cJSON;

struct config_doc;

/* A place to put one error message "file:line: message". The code base's
 * one way to hand a person's error message back: config, cli, URLs, the
 * proxy and the load generator, results and reports. */
struct config_err {
    char msg[512];
};

/* Formats fmt into err (when not NULL); returns -EINVAL. */
int config_err_set(struct config_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reads and parses path. On failure returns a negative errno with the
 * reason in err. */
int config_load_file(const char *path, struct config_doc **ret, struct config_err *err);

/* Parses text (YAML or JSON) that came from `name` (used in messages). */
int config_parse(const char *name, const char *text, size_t len, struct config_doc **ret,
                 struct config_err *err);

void config_free(struct config_doc *doc);

/* The root node (borrowed from doc). */
const struct cJSON *config_root(const struct config_doc *doc);
const char *config_name(const struct config_doc *doc);

/* The 1-based line where node starts, or 0 when unknown. */
int config_line(const struct config_doc *doc, const struct cJSON *node);

/* Formats "name:line: message" into err and returns -EINVAL. */
int config_error(const struct config_doc *doc, const struct cJSON *node, struct config_err *err,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fails on any key of obj not in allowed (NULL-terminated). */
int config_check_keys(const struct config_doc *doc, const struct cJSON *obj,
                      const char *const *allowed, struct config_err *err);

/* Typed getters: a missing key leaves *ret untouched and returns 0 (or
 * -ENOENT with an error if required); a wrong type is an error. */
int config_get_string(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                      bool required, const char **ret, struct config_err *err);
int config_get_bool(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                    bool *ret, struct config_err *err);
/* Accepts true/false and the strings on/off. */
int config_get_onoff(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                     bool *ret, struct config_err *err);
int config_get_u64(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                   uint64_t min, uint64_t max, uint64_t *ret, struct config_err *err);
int config_get_double(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                      double min, double max, double *ret, struct config_err *err);
/* Accepts "500ms", "2s" or a number of seconds. */
int config_get_duration(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                        usec_t *ret, struct config_err *err);
/* Accepts "64M", "512K" or a number of bytes. */
int config_get_size(const struct config_doc *doc, const struct cJSON *obj, const char *key,
                    uint64_t *ret, struct config_err *err);

#endif
