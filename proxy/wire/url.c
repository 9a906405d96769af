#include "wire/url.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"

int url_parse(const char *url, struct url_target *ret, struct config_err *err)
{
    struct url_target t;
    memset(&t, 0, sizeof(t));
    const char *rest;
    for (const char *q = url; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return config_err_set(err, "'%s': a URL cannot hold spaces or control characters", url);
    if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        rest = url + 8;
        t.tls = true;
    } else {
        return config_err_set(err, "'%s': expected http://HOST:PORT or https://HOST:PORT", url);
    }
    const char *slash = strchr(rest, '/');
    size_t hostlen = slash ? (size_t)(slash - rest) : strlen(rest);
    char hostport[300];
    if (hostlen == 0 || hostlen >= sizeof(hostport))
        return config_err_set(err, "'%s': missing host", url);
    memcpy(hostport, rest, hostlen);
    hostport[hostlen] = '\0';
    if (!strchr(hostport, ':') || hostport[hostlen - 1] == ']') {
        /* No port: HTTP's default, or HTTPS's. */
        if (hostlen + 5 >= sizeof(hostport))
            return config_err_set(err, "'%s': host too long", url);
        strcat(hostport, t.tls ? ":443" : ":80");
    }
    if (net_parse_hostport(hostport, &t.addr) < 0)
        return config_err_set(err, "'%s': expected a numeric address or localhost with a port",
                              url);
    snprintf(t.host_header, sizeof(t.host_header), "%s", hostport);
    /* The host without its port and brackets: what a certificate names. */
    const char *colon = strrchr(hostport, ':');
    const char *h = hostport;
    size_t hl = (size_t)(colon - hostport);
    if (h[0] == '[') {
        h++;
        hl -= 2;
    }
    snprintf(t.host, sizeof(t.host), "%.*s", (int)hl, h);
    if (slash) {
        size_t plen = strlen(slash);
        while (plen > 0 && slash[plen - 1] == '/')
            plen--;
        if (plen >= sizeof(t.base_path))
            return config_err_set(err, "'%s': path too long", url);
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
