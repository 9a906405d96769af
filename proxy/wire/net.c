#include "wire/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

int net_parse_hostport(const char *s, struct net_addr *ret)
{
    char host[64];
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || port > 65535)
        return -EINVAL;
    if (strcmp(host, "localhost") == 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "127.0.0.1");

    struct net_addr a;
    memset(&a, 0, sizeof(a));
    struct sockaddr_in *in4 = (struct sockaddr_in *)&a.ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        a.len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        a.len = sizeof(*in6);
    } else {
        return -EINVAL;
    }
    *ret = a;
    return 0;
}

void net_format_host(const struct net_addr *a, char *buf, size_t len)
{
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a->ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
    if (a->ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len);
    else if (a->ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &in4->sin_addr, buf, (socklen_t)len);
    else
        snprintf(buf, len, "?");
}

unsigned net_port(const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

void net_format(const struct net_addr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    net_format_host(a, host, sizeof(host));
    if (a->ss.ss_family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", host, net_port(a));
    else
        snprintf(buf, len, "%s:%u", host, net_port(a));
}

int net_set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        return -errno;
    return 0;
}

int net_sockname(int fd, struct net_addr *ret)
{
    struct net_addr a;
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0)
        return -errno;
    *ret = a;
    return 0;
}

struct event_base *net_event_base_new(unsigned flags)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    if (flags & NET_LOOP_PRECISE)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    /* After NET_PRIO_BATCH callbacks of NET_PRIO_NEW or later, the loop
     * looks for new readiness again (and runs NET_PRIO_IO first). */
    if ((flags & NET_LOOP_PRIORITIES) &&
        event_config_set_max_dispatch_interval(cfg, NULL, NET_PRIO_BATCH, NET_PRIO_NEW) < 0) {
        event_config_free(cfg);
        return NULL;
    }
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base && (flags & NET_LOOP_PRIORITIES) && event_base_priority_init(base, NET_PRIOS) < 0) {
        event_base_free(base);
        return NULL;
    }
    return base;
}

void net_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int net_write_bufferevent_output(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
    return n;
}

int net_parse_cidr(const char *s, struct net_cidr *ret)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    struct net_cidr c = {0};
    unsigned max;
    if (inet_pton(AF_INET, host, c.addr) == 1) {
        c.family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, c.addr) == 1) {
        c.family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    c.prefix = max;
    if (slash) {
        char *end;
        errno = 0;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || p > max)
            return -EINVAL;
        c.prefix = (unsigned)p;
    }
    *ret = c;
    return 0;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool net_cidr_contains(const struct net_cidr *c, const char *ip)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return c->family == AF_INET && prefix_equal(a, c->addr, c->prefix);
    if (inet_pton(AF_INET6, ip, a) != 1)
        return false;
    if (c->family == AF_INET6)
        return prefix_equal(a, c->addr, c->prefix);
    /* An IPv4 client of a dual-stack socket: ::ffff:a.b.c.d. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, mapped, 12) == 0 && prefix_equal(a + 12, c->addr, c->prefix);
}
