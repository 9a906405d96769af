/* scenario_ref: the {{...}} reference syntax of scenario prompts, shared
 * by validation (scenario.c) and expansion (scenario_eval.c) so the two
 * can never disagree. Private to the scenario module. */
#ifndef TOKENTAP_SCENARIO_REF_H
#define TOKENTAP_SCENARIO_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "scenario.h"

enum scenario_ref_kind {
    SCENARIO_REF_VAR,   /* {{vars.NAME}} */
    SCENARIO_REF_AGENT, /* {{agents.NAME.last|all|turnN}} */
};

struct scenario_ref {
    enum scenario_ref_kind kind;
    const char *start;  /* borrowed: the "{{" in the text */
    size_t len;         /* bytes from "{{" through "}}" */
    char name[SCENARIO_MAX_NAME + 1];
    char which[8];      /* agent references: "last", "all" or "turnN" */
    unsigned turn;      /* N of turnN (1..999), else 0 */
};

/* Letters, digits, '_' and '-': the characters of every name. */
bool scenario_ref_name_char(char c);

/* Finds the next reference at or after text + *pos. Returns 1 with *ret
 * filled and *pos moved past it, 0 when there is no further "{{", or
 * -EINVAL for a malformed reference with the reason in why. */
int scenario_ref_next(const char *text, size_t *pos, struct scenario_ref *ret, char *why,
                      size_t whylen);

#endif
