/* Unit tests for url: upstream URLs into address, Host header and path
 * prefix; every malformed one is refused with a reason naming it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/config.h"
#include "wire/url.h"

struct good {
    const char *in;
    const char *url, *host_header, *base_path, *addr;
    const char *host; /* what TLS checks */
    bool tls;
};

static const struct good goods[] = {
    {"http://127.0.0.1:7080", "http://127.0.0.1:7080", "127.0.0.1:7080", "", "127.0.0.1:7080",
     "127.0.0.1", false},
    {"http://127.0.0.1:7080/", "http://127.0.0.1:7080", "127.0.0.1:7080", "", "127.0.0.1:7080",
     "127.0.0.1", false},
    {"http://127.0.0.1:8080/llm/v2//", "http://127.0.0.1:8080/llm/v2", "127.0.0.1:8080", "/llm/v2",
     "127.0.0.1:8080", "127.0.0.1", false},
    /* No port: HTTP's. */
    {"http://127.0.0.1", "http://127.0.0.1", "127.0.0.1:80", "", "127.0.0.1:80", "127.0.0.1", false},
    {"http://127.0.0.1/x", "http://127.0.0.1/x", "127.0.0.1:80", "/x", "127.0.0.1:80", "127.0.0.1",
     false},
    /* localhost is the one name taken, as 127.0.0.1; Host keeps the name. */
    {"http://localhost:9000", "http://localhost:9000", "localhost:9000", "", "127.0.0.1:9000",
     "localhost", false},
    {"http://[::1]:8081/p", "http://[::1]:8081/p", "[::1]:8081", "/p", "[::1]:8081", "::1", false},
    {"http://[::1]", "http://[::1]", "[::1]:80", "", "[::1]:80", "::1", false},
    /* https: TLS, port 443 without one; the host is the name the
     * certificate must carry. */
    {"https://127.0.0.1:8443", "https://127.0.0.1:8443", "127.0.0.1:8443", "", "127.0.0.1:8443",
     "127.0.0.1", true},
    {"https://localhost/v1/", "https://localhost/v1", "localhost:443", "/v1", "127.0.0.1:443",
     "localhost", true},
    {"https://[::1]", "https://[::1]", "[::1]:443", "", "[::1]:443", "::1", true},
};

struct bad {
    const char *in;
    const char *reason; /* a part of the message */
};

static const struct bad bads[] = {
    {"127.0.0.1:8080", "expected http://HOST:PORT or https://HOST:PORT"},
    {"https://", "missing host"},
    {"https://example.com", "expected a numeric address or localhost with a port"},
    {"ftp://127.0.0.1:21", "expected http://HOST:PORT"},
    {"", "expected http://HOST:PORT"},
    {"http://", "missing host"},
    {"http:///path", "missing host"},
    {"http://example.com:80", "expected a numeric address or localhost with a port"},
    {"http://127.0.0.1:99999", "expected a numeric address or localhost with a port"},
    {"http://127.0.0.1:", "expected a numeric address or localhost with a port"},
    {"http://127.0.0.1:80x", "expected a numeric address or localhost with a port"},
};

static void test_good(void)
{
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        const struct good *g = &goods[i];
        struct url_target t;
        struct config_err err = {""};
        char addr[80];
        int r = url_parse(g->in, &t, &err);
        CHECK_INT(r, 0);
        if (r < 0) {
            fprintf(stderr, "  %s: %s\n", g->in, err.msg);
            continue;
        }
        CHECK_STR(t.url, g->url);
        CHECK_STR(t.host_header, g->host_header);
        CHECK_STR(t.base_path, g->base_path);
        CHECK_STR(t.host, g->host);
        CHECK(t.tls == g->tls);
        net_format(&t.addr, addr, sizeof(addr));
        CHECK_STR(addr, g->addr);
    }
}

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        const struct bad *b = &bads[i];
        struct url_target t;
        memset(&t, 0x5a, sizeof(t));
        struct config_err err = {""};
        char quoted[300];
        CHECK_INT(url_parse(b->in, &t, &err), -EINVAL);
        CHECK(strstr(err.msg, b->reason) != NULL);
        /* The message names the URL, on one line. */
        snprintf(quoted, sizeof(quoted), "'%s'", b->in);
        CHECK(strncmp(err.msg, quoted, strlen(quoted)) == 0);
        CHECK(strchr(err.msg, '\n') == NULL);
        /* *ret is written only on success. */
        CHECK_INT((unsigned char)t.url[0], 0x5a);
    }
}

/* Limits: a path or host longer than the fields is refused, not cut. */
static void test_limits(void)
{
    char in[1024];
    struct config_err err;
    struct url_target t;
    int n = snprintf(in, sizeof(in), "http://127.0.0.1:8080/");
    memset(in + n, 'p', 300);
    in[n + 300] = '\0';
    CHECK_INT(url_parse(in, &t, &err), -EINVAL);
    CHECK(strstr(err.msg, "path too long") != NULL);

    n = snprintf(in, sizeof(in), "http://");
    memset(in + n, '1', 400);
    in[n + 400] = '\0';
    CHECK_INT(url_parse(in, &t, &err), -EINVAL);
    CHECK(strstr(err.msg, "missing host") != NULL);

    /* 254 path bytes fit base_path[256]; 255 do not. */
    n = snprintf(in, sizeof(in), "http://127.0.0.1:1/");
    memset(in + n, 'q', 254);
    in[n + 254] = '\0';
    CHECK_INT(url_parse(in, &t, &err), 0);
    CHECK_INT(strlen(t.base_path), 255);
    in[n + 254] = 'q';
    in[n + 255] = '\0';
    CHECK_INT(url_parse(in, &t, &err), -EINVAL);
}

int main(void)
{
    test_good();
    test_bad();
    test_limits();
    return check_done("test_url");
}
