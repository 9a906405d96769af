/* admin: tokentap's own endpoints under /tokentap/ on the proxy port
 * (health now; metrics, stats, requests and the dashboard later). */
#ifndef TOKENTAP_ADMIN_H
#define TOKENTAP_ADMIN_H

#include <stdbool.h>

#include "wire/http.h"
#include "wire/server.h"

struct proxy;

/* True for paths under the reserved prefix /tokentap/. */
bool admin_match(const struct http_head *h);

/* Answers an admin request completely. */
void admin_handle(struct proxy *p, struct server_req *req);

#endif
