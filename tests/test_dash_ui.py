#!/usr/bin/env python3
"""The dashboard outside serve's own port. `tokentap serve` with an admin
token and --admin-listen: the page and its event stream follow the admin
rules (401 without the token, the page passes ?token= on; on the admin
listener, 404 on the proxy port). `tokentap replay --ui` and `tokentap
bench --ui`: while each runs on the
built-in simulator, its port serves the dashboard page, / redirects to
it, /tokentap/stats answers, and /tokentap/events streams frames in which
the generated requests show up as lanes and as finished requests. A
second connection that never reads does not stop the first from getting
frames. Then the command ends as usual (exit 0). Needs TOKENTAP and
FIXTURES; loopback only; every process it starts is stopped.
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

failures = []


def fail(msg):
    print('test_dash_ui: FAIL: ' + msg, file=sys.stderr)
    failures.append(msg)


def get(addr, path):
    host, port = addr.rsplit(':', 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request('GET', path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader('Location'), body


def frames(addr, seconds, path='/tokentap/events'):
    """Reads an event stream for a while: {hello: [...], frame: [...], levels: [...]}."""
    host, port = addr.rsplit(':', 1)
    s = socket.create_connection((host, int(port)), timeout=1)
    s.sendall(b'GET %s HTTP/1.1\r\nHost: x\r\n\r\n' % path.encode())
    buf = b''
    end = time.time() + seconds
    while time.time() < end:
        try:
            b = s.recv(1 << 16)
        except socket.timeout:
            continue
        if not b:
            break
        buf += b
    s.close()
    head, _, body = buf.partition(b'\r\n\r\n')
    if b'text/event-stream' not in head:
        fail('/tokentap/events answered: %r' % head[:200])
    out = {'hello': [], 'frame': [], 'levels': []}
    for block in body.decode().split('\n\n'):
        m = re.match(r'event: (\w+)\ndata: (.*)', block, re.S)
        if m:
            out[m.group(1)].append(json.loads(m.group(2)))
    return out


def watch(cmd, name, cwd):
    err = tempfile.TemporaryFile(mode='w+')
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
    try:
        url = None
        for _ in range(100):
            err.seek(0)
            m = re.search(r'dashboard at http://(\S+)/tokentap/', err.read())
            if m:
                url = m.group(1)
                break
            time.sleep(0.05)
        if not url:
            err.seek(0)
            fail('%s: no "dashboard at" line: %s' % (name, err.read()[-500:]))
            return
        status, _, page = get(url, '/tokentap/')
        if status != 200 or b'Chart.js v3' not in page or b'/tokentap/events' not in page.replace(b"'events'", b'/tokentap/events'):
            fail('%s: /tokentap/ answered %d, %d bytes' % (name, status, len(page)))
        status, loc, _ = get(url, '/')
        if status != 302 or loc != '/tokentap/':
            fail('%s: / answered %d %s' % (name, status, loc))
        status, _, _ = get(url, '/v1/models')
        if status != 404:
            fail('%s: /v1/models on the dashboard port answered %d' % (name, status))
        # A dashboard that never reads, next to one that does.
        host, port = url.rsplit(':', 1)
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(b'GET /tokentap/events HTTP/1.1\r\nHost: x\r\n\r\n')
        ev = frames(url, 2.5)
        stalled.close()
        if len(ev['hello']) != 1 or not ev['hello'][0]['title'].startswith('tokentap '):
            fail('%s: hello %s' % (name, ev['hello']))
        if len(ev['frame']) < 5 or not ev['frame'][0]['full']:
            fail('%s: %d frames in 2.5 s' % (name, len(ev['frame'])))
        lanes = sum(len(f['lanes']) for f in ev['frame'])
        done = sum(len(f['done']) for f in ev['frame'])
        ticks = sum(len(l['k']) for f in ev['frame'] for l in f['lanes'])
        if lanes < 1 or done < 1 or ticks < 1:
            fail('%s: the load did not show: %d lane updates, %d ticks, %d finished' % (name, lanes, ticks, done))
        if name == 'bench' and not any(ev['levels']):
            fail('bench: no level table')
    finally:
        try:
            rc = p.wait(120)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        if rc != 0:
            err.seek(0)
            fail('%s exited with %d: %s' % (name, rc, err.read()[-500:]))


def start(cmd, tmp, name):
    out = open(os.path.join(tmp, name + '.out'), 'w+')
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
    for _ in range(200):
        out.seek(0)
        found = re.findall(r'^(?:admin )?listening on (\S+)', out.read(), re.M)
        if len(found) == (2 if '--admin-listen' in cmd else 1):
            return p, found
        time.sleep(0.05)
    p.kill()
    sys.exit('test_dash_ui: %s did not start' % name)


def serve_access(tokentap, tmp):
    tokfile = os.path.join(tmp, 'token')
    with open(tokfile, 'w') as f:
        f.write('s3cret\n')
    sim, (sim_addr,) = start([tokentap, 'sim', '--listen', '127.0.0.1:0'], tmp, 'sim')
    srv, (addr, admin) = start([tokentap, 'serve', '--listen', '127.0.0.1:0', '--upstream',
                                'http://' + sim_addr, '--admin-listen', '127.0.0.1:0',
                                '--admin-token-file', tokfile], tmp, 'serve')
    try:
        for path, want in (('/tokentap/', 401), ('/tokentap/events', 401),
                           ('/tokentap/?token=wrong', 401), ('/tokentap/?token=s3cret', 200)):
            status, _, body = get(admin, path)
            if status != want:
                fail('admin listener: %s answered %d, not %d' % (path, status, want))
        if b"new EventSource('events' + location.search)" not in body:
            fail('the page does not pass its query (the token) on to the event stream')
        status, _, _ = get(addr, '/tokentap/?token=s3cret')
        if status != 404:
            fail('proxy port with --admin-listen: /tokentap/ answered %d' % status)
        ev = frames(admin, 1.0, '/tokentap/events?token=s3cret')
        if len(ev['hello']) != 1:
            fail('admin listener: no event stream with the token')
    finally:
        for p in (srv, sim):
            p.terminate()
            p.wait(10)


def main():
    tokentap, fixtures = os.environ.get('TOKENTAP'), os.environ.get('FIXTURES')
    if not tokentap or not fixtures:
        sys.exit('test_dash_ui: set TOKENTAP and FIXTURES')
    tokentap = os.path.abspath(tokentap)
    with tempfile.TemporaryDirectory() as tmp:
        serve_access(tokentap, tmp)
        trace = os.path.join(tmp, 'trace.jsonl')
        with open(trace, 'w') as f:
            for i in range(12):
                f.write(json.dumps({'timestamp': i * 250, 'session': 'agent-%d' % (i % 3),
                                    'messages': [{'role': 'user', 'content': 'hello %d' % i}],
                                    'max_tokens': 60, 'stream': True}) + '\n')
        watch([tokentap, 'replay', trace, '--ui', '127.0.0.1:0', '-q', '--sim-decode-tps', '40'],
              'replay', tmp)
        watch([tokentap, 'bench', 'fixtures/scenario-tiny.yaml', '--ui', '127.0.0.1:0', '-q',
               '-n', '4', '--allow-failures', '--out', os.path.join(tmp, 'bench')], 'bench',
              os.path.dirname(fixtures))  # the tiny scenario fails a check on purpose
    if failures:
        sys.exit(1)
    print('test_dash_ui: ok')


if __name__ == '__main__':
    main()
