/* scenario_int: what the scenario module's files share and nobody else
 * uses. The {{...}} reference syntax serves validation (scenario.c) and
 * expansion (scenario_eval.c), so the two can never disagree; checks are
 * parsed in scenario_check.c, next to the code that judges them. */
#ifndef TOKENTAP_SCENARIO_INT_H
#define TOKENTAP_SCENARIO_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "study/scenario.h"

struct cJSON;
struct config_doc;
struct config_err;

enum scenario_ref_kind {
    SCENARIO_REF_VAR,   /* {{vars.NAME}} */
    SCENARIO_REF_AGENT, /* {{agents.NAME.last|all|turnN}} */
};

struct scenario_ref {
    enum scenario_ref_kind kind;
    const char *start; /* borrowed: the "{{" in the text */
    size_t len;        /* bytes from "{{" through "}}" */
    char name[SCENARIO_MAX_NAME + 1];
    char which[8]; /* agent references: "last", "all" or "turnN" */
    unsigned turn; /* N of turnN (1..999), else 0 */
};

/* Letters, digits, '_' and '-': the characters of every name. */
bool scenario_ref_name_char(char c);

/* Finds the next reference at or after text + *pos. Returns 1 with *ret
 * filled and *pos moved past it, 0 when there is no further "{{", or
 * -EINVAL for a malformed reference with the reason in why. */
int scenario_ref_next(const char *text, size_t *pos, struct scenario_ref *ret, char *why,
                      size_t whylen);

/* Parses a `checks:` mapping. 0 with *ret (owned by the caller; NULL for
 * an empty mapping: nothing to verify), or a negative errno with
 * "file:line: message" in err. */
int scenario_check_parse(const struct config_doc *doc, const struct cJSON *obj,
                         struct scenario_check **ret, struct config_err *err);

/* Frees c and everything it owns; NULL is a no-op. */
void scenario_check_free(struct scenario_check *c);

/* Free what one target, agent or level owns (not the struct: it sits in an array). */
void scenario_target_finish(struct scenario_target *t);
void scenario_agent_finish(struct scenario_agent *a);
void scenario_level_finish(struct scenario_level *lv);

#endif
