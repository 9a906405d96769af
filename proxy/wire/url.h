/* url: an upstream's "http[s]://HOST:PORT[/prefix]" read into what a
 * client needs to reach it. Pure: no I/O, no name lookup (numeric hosts and
 * localhost only). Used by the upstream client and by the scenario loader,
 * which checks its targets' URLs. */
#ifndef TOKENTAP_URL_H
#define TOKENTAP_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/net.h"

struct config_err;

/* Where requests go. */
struct url_target {
    char url[512];         /* as given, without a trailing '/' */
    char host_header[300]; /* "127.0.0.1:7080": the Host sent upstream */
    char base_path[256];   /* "" or "/prefix", prepended to request paths */
    char host[256];        /* "localhost", "127.0.0.1", "::1": the name TLS checks */
    bool tls;              /* https:// */
    struct net_addr addr;
};

/* Parses "http://HOST:PORT[/prefix]" or "https://..." (numeric host or
 * localhost; port 80 or 443 when none). 0, or -EINVAL with a one-line reason in err (*ret untouched). */
int url_parse(const char *url, struct url_target *ret, struct config_err *err);

#endif
