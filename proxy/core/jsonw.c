#include "core/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

void jsonw_str(struct evbuffer *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    EVBUFFER_ADD_LIT(out, "\"");
    size_t run = 0; /* bytes that need no escaping, written in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
                u[4] = hex[c >> 4]; u[5] = hex[c & 15];
            }
        }
        if (!esc && c >= 0x20) {
            run++;
            continue;
        }
        if (run)
            evbuffer_add(out, s + i - run, run);
        run = 0;
        if (esc)
            evbuffer_add(out, esc, strlen(esc));
        else
            evbuffer_add(out, u, 6);
    }
    if (run)
        evbuffer_add(out, s + len - run, run);
    EVBUFFER_ADD_LIT(out, "\"");
}

void jsonw_cstr(struct evbuffer *out, const char *s)
{
    if (!s)
        EVBUFFER_ADD_LIT(out, "null");
    else
        jsonw_str(out, s, strlen(s));
}

const char *jsonw_format_double(double v, char *buf, size_t len)
{
    if (!isfinite(v)) {
        snprintf(buf, len, "0");
        return buf;
    }
    /* Whole numbers keep a ".0", as nlohmann::json (llama-server) prints them. */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, len, "%.1f", v);
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

void jsonw_double(struct evbuffer *out, double v)
{
    char buf[40];
    jsonw_format_double(v, buf, sizeof(buf));
    evbuffer_add(out, buf, strlen(buf));
}
