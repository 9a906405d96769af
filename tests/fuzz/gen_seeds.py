#!/usr/bin/env python3
"""Writes the seeds of the http, sse and dialect fuzz targets from the
llama-server captures (tests/fixtures/llama-server, and any other capture
folders given): tests/fuzz/seeds/<target>/<capture>. Each seed starts with
the target's mode bytes (see tests/fuzz_<target>.c). The trace_read seeds
are lines that `tokentap serve --record --record-events` wrote against the
simulator, plus the import formats; they are kept as committed files.

    python3 tests/fuzz/gen_seeds.py tests/fixtures/llama-server /work/shared/llama-server
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, 'seeds')
MAX_BODY = 8192  # keeps seeds (and libFuzzer's default -max_len) small

# Capture number -> (request path, dialect index in fuzz_dialect.c's table).
CHAT, COMPLETIONS, LLAMA, ANTHROPIC, RESPONSES = 1, 2, 3, 4, 5
ROUTES = [
    (r'^1[0-4]|^17|^4[0-3]|^5[0-3]_|^54_|^55', '/v1/chat/completions', CHAT),
    (r'^15|^16', '/apply-template', CHAT),
    (r'^2[0-1]|^53b|^54b', '/v1/messages', ANTHROPIC),
    (r'^22', '/v1/messages/count_tokens', ANTHROPIC),
    (r'^30|^33|^50c', '/completion', LLAMA),
    (r'^3[1-2]|^34', '/v1/completions', COMPLETIONS),
    (r'^35', '/v1/responses', RESPONSES),
]


def route(name):
    for pat, path, dialect in ROUTES:
        if re.search(pat, name):
            return path, dialect
    return '/', 0


def split_capture(data):
    """(head lines, body) of a curl -D - capture."""
    for sep in (b'\r\n\r\n', b'\n\n'):
        i = data.find(sep)
        if i >= 0:
            return data[:i].replace(b'\r\n', b'\n').split(b'\n'), data[i + len(sep):]
    return None, None


def chunked(body):
    """One chunk per SSE event, as llama-server writes them."""
    out = b''
    for ev in re.split(rb'(?<=\n\n)', body):
        if ev:
            out += b'%x\r\n' % len(ev) + ev + b'\r\n'
    return out + b'0\r\n\r\n'


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def main(dirs):
    for src in dirs:
        for fn in sorted(os.listdir(src)):
            if not fn.endswith('.txt'):
                continue
            base = fn[:-4]
            data = open(os.path.join(src, fn), 'rb').read()
            if base.endswith('rawwire'):
                write('http', base, b'\x01\x07' + data[:MAX_BODY])
                continue
            head, body = split_capture(data)
            if not head or not head[0].startswith(b'HTTP/1.1 '):
                continue
            body = body[:MAX_BODY]
            if MAX_BODY <= len(body):
                body = body[:body.rfind(b'\n\n') + 2]
            path, dialect = route(base)
            stream = any(h.lower().startswith(b'content-type: text/event-stream') for h in head)
            te = any(h.lower().startswith(b'transfer-encoding: chunked') for h in head)
            hb = b'\r\n'.join(head) + b'\r\n\r\n'
            if te:
                wire = hb + chunked(body)
            else:
                hb = b'\r\n'.join(h for h in head if not h.lower().startswith(b'content-length'))
                wire = hb + b'\r\nContent-Length: %d\r\n\r\n' % len(body) + body
            # mode 1: response, 64K head, no body limit; split byte 5
            write('http', base, b'\x01\x05' + wire)
            if stream:
                write('sse', base, b'\x00\x03' + body)
                write('dialect', base, bytes([dialect]) + body)
            elif body.lstrip().startswith(b'{'):
                write('dialect', base, bytes([0x80 | dialect]) + body)
            req = os.path.join(src, base + '.request.json')
            if os.path.exists(req):
                rb = open(req, 'rb').read()
                r = (b'POST %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n'
                     b'Content-Length: %d\r\n\r\n' % (path.encode(), len(rb)) + rb)
                write('http', base + '.request', b'\x00\x09' + r)
                c = (b'POST %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nTransfer-Encoding: chunked\r\n\r\n'
                     % path.encode() + b'%x\r\n' % len(rb) + rb + b'\r\n0\r\n\r\n')
                write('http', base + '.request-chunked', b'\x00\x0b' + c)
    # Pipelined requests, an upgrade, a HEAD and an Expect.
    write('http', 'pipelined', b'\x00\x02GET /health HTTP/1.1\r\nHost: a\r\n\r\n'
          b'GET /v1/models HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')
    write('http', 'upgrade', b'\x00\x04GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n'
          b'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\nGET / HTTP/1.1\r\n\r\n')
    write('http', 'expect', b'\x00\x06POST /v1/completions HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n'
          b'Content-Length: 15\r\n\r\n{"prompt":"hi"}')
    write('http', 'chunk-ext', b'\x08\x01POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n'
          b'5;name=value\r\nhello\r\n0;x=y\r\nTrailer: z\r\n\r\n')


if __name__ == '__main__':
    main(sys.argv[1:] or [os.path.join(HERE, '..', 'fixtures', 'llama-server')])
