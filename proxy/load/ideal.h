/* ideal: the prompt cache a server with unlimited room would have. It
 * remembers every prefix (in blocks of hash ids) of every prompt seen so
 * far, so a new prompt's longest prefix shared with any earlier one is
 * what an ideal cache would serve: the yardstick replay puts next to the
 * tokens a real server took from its cache. Pure. */
#ifndef TOKENTAP_IDEAL_H
#define TOKENTAP_IDEAL_H

#include <stddef.h>
#include <stdint.h>

/* The most prefixes kept (8 bytes each); past it, new ones are not added
 * and ideal_full says so. */
#define IDEAL_MAX_PREFIXES (16u << 20)

struct ideal;

int ideal_new(struct ideal **ret);
void ideal_free(struct ideal *c);

/* The longest k such that ids[0, k) began an earlier prompt with the same
 * salt (salt keeps traces whose ids mean different things apart), into
 * *ret_shared; then remembers every prefix of ids. 0 or -ENOMEM (nothing
 * remembered). */
int ideal_add(struct ideal *c, uint64_t salt, const uint64_t *ids, size_t n, size_t *ret_shared);

/* Whether prefixes were left out (IDEAL_MAX_PREFIXES): the figures are then a lower bound. */
int ideal_full(const struct ideal *c);

#endif
