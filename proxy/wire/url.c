#include "wire/url.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int url_parse(const char *url, struct url_target *ret, char *err, size_t errlen)
{
    struct url_target t;
    memset(&t, 0, sizeof(t));
    const char *rest;
    if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        snprintf(err, errlen, "'%s': https upstreams are not supported yet; use http://", url);
        return -EINVAL;
    } else {
        snprintf(err, errlen, "'%s': expected http://HOST:PORT", url);
        return -EINVAL;
    }
    const char *slash = strchr(rest, '/');
    size_t hostlen = slash ? (size_t)(slash - rest) : strlen(rest);
    char hostport[300];
    if (hostlen == 0 || hostlen >= sizeof(hostport)) {
        snprintf(err, errlen, "'%s': missing host", url);
        return -EINVAL;
    }
    memcpy(hostport, rest, hostlen);
    hostport[hostlen] = '\0';
    if (!strchr(hostport, ':') || hostport[hostlen - 1] == ']') {
        /* No port: HTTP's default. */
        if (hostlen + 4 >= sizeof(hostport)) {
            snprintf(err, errlen, "'%s': host too long", url);
            return -EINVAL;
        }
        strcat(hostport, ":80");
    }
    if (net_parse_hostport(hostport, &t.addr) < 0) {
        snprintf(err, errlen, "'%s': expected a numeric address or localhost with a port", url);
        return -EINVAL;
    }
    snprintf(t.host_header, sizeof(t.host_header), "%s", hostport);
    if (slash) {
        size_t plen = strlen(slash);
        while (plen > 0 && slash[plen - 1] == '/')
            plen--;
        if (plen >= sizeof(t.base_path)) {
            snprintf(err, errlen, "'%s': path too long", url);
            return -EINVAL;
        }
        memcpy(t.base_path, slash, plen);
        t.base_path[plen] = '\0';
    }
    size_t ulen = strlen(url);
    while (ulen > 0 && url[ulen - 1] == '/')
        ulen--;
    snprintf(t.url, sizeof(t.url), "%.*s", (int)ulen, url);
    *ret = t;
    return 0;
}
