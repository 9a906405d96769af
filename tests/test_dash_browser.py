#!/usr/bin/env python3
"""The dashboard in a real browser: starts `tokentap sim` (2 slots) and
`tokentap serve` on 127.0.0.1, drives streamed requests from three
sessions (up to 5 at once, so some wait for a slot), opens /tokentap/ in
headless Chromium driven over the DevTools protocol (--remote-debugging-pipe:
no extra packages), and checks from the rendered page:
  - lanes: one per request in flight, grouped by session, with ticks drawn,
    in the states the traffic puts them in;
  - the level table: the same levels, request counts and TTFT p50 as
    /tokentap/stats, and its chart;
  - the over-time charts: the token events they sum to match /tokentap/stats;
  - the sessions table: requests per session as /tokentap/stats counts them;
  - a request's details open on click, with its gap histogram;
  - no exception or console message, and no network request outside the proxy.
Leaves a screenshot in SHOTDIR. Skips (exit 77) without chromium.
Needs TOKENTAP. Every process it starts is stopped; all traffic is loopback.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

failures = []


def fail(msg):
    print('test_dash_browser: FAIL: ' + msg, file=sys.stderr)
    failures.append(msg)


def start(cmd, tmp, name):
    out = open(os.path.join(tmp, name + '.out'), 'w+')
    err = open(os.path.join(tmp, name + '.err'), 'w')
    p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        out.seek(0)
        m = re.search(r'^listening on (\S+)', out.read(), re.M)
        if m:
            return p, m.group(1)
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    sys.exit('test_dash_browser: %s did not start: %s' % (name, open(err.name).read()))


def get_json(addr, path):
    host, port = addr.rsplit(':', 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request('GET', path)
    body = c.getresponse().read()
    c.close()
    return json.loads(body)


def stream(addr, session, tokens):
    host, port = addr.rsplit(':', 1)
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps({'model': 'tokentap-sim', 'stream': True, 'max_tokens': tokens,
                       'messages': [{'role': 'user', 'content': 'dashboard test from ' + session}]})
    c.request('POST', '/v1/chat/completions', body,
              {'Content-Type': 'application/json', 'X-Session-ID': session})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands in) and 4
    (answers and events out), NUL-separated JSON."""

    def __init__(self, tmp):
        to_chrome_r, self.w = os.pipe()
        self.r, from_chrome_w = os.pipe()
        os.makedirs(os.path.join(tmp, 'home'), exist_ok=True)
        env = dict(os.environ, HOME=os.path.join(tmp, 'home'))
        self.log = open(os.path.join(tmp, 'chromium.log'), 'w')
        # bash puts the pipe's ends on fds 3 and 4, where chromium wants them
        # (through 10 and 11: the ends may be 3 or 4 already).
        move = 'exec 10<&%d 11>&%d; exec 3<&10 4>&11 10<&- 11>&-; exec "$@"' % (
            to_chrome_r, from_chrome_w)
        self.p = subprocess.Popen(
            ['bash', '-c', move, 'bash', 'chromium', '--headless', '--no-sandbox', '--disable-gpu',
             '--disable-quic', '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync',
             '--user-data-dir=' + os.path.join(tmp, 'profile'), '--remote-debugging-pipe',
             '--window-size=1400,1800', '--hide-scrollbars', 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env,
            pass_fds=(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b''
        self.next_id = 0
        self.events = []
        self.session = None

    def _read(self, timeout):
        import select
        while b'\0' not in self.buf:
            ready, _, _ = select.select([self.r], [], [], timeout)
            if not ready:
                raise TimeoutError('no answer from chromium')
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise EOFError('chromium closed the pipe')
            self.buf += chunk
        msg, self.buf = self.buf.split(b'\0', 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session and self.session:
            msg['sessionId'] = self.session
        os.write(self.w, json.dumps(msg).encode() + b'\0')
        deadline = time.time() + timeout
        while True:
            m = self._read(max(0.1, deadline - time.time()))
            if m.get('id') == self.next_id:
                if 'error' in m:
                    raise RuntimeError('%s: %s' % (method, m['error']))
                return m.get('result', {})
            if 'method' in m:
                self.events.append(m)

    def pump(self, seconds):
        """Collects events for a while."""
        end = time.time() + seconds
        while time.time() < end:
            try:
                m = self._read(max(0.05, end - time.time()))
            except TimeoutError:
                return
            if 'method' in m:
                self.events.append(m)

    def js(self, expr):
        r = self.call('Runtime.evaluate', {'expression': expr, 'returnByValue': True,
                                           'awaitPromise': True})
        if 'exceptionDetails' in r:
            raise RuntimeError('js: %s: %s' % (expr[:80], r['exceptionDetails']))
        return r['result'].get('value')

    def close(self):
        try:
            self.call('Browser.close', session=False, timeout=5)
        except Exception:
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def main():
    tokentap = os.environ.get('TOKENTAP')
    if not tokentap:
        sys.exit('test_dash_browser: set TOKENTAP')
    if not shutil.which('chromium'):
        print('test_dash_browser: SKIP: chromium is not installed (apt-get install chromium)',
              file=sys.stderr)
        sys.exit(77)
    shotdir = os.environ.get('SHOTDIR', '.')
    tmp = tempfile.mkdtemp(prefix='tokentap-dash.')
    procs = []
    browser = None
    try:
        sim, sim_addr = start([tokentap, 'sim', '--listen', '127.0.0.1:0', '--slots', '2',
                               '--decode-tps', '40', '--log-level', 'warn'], tmp, 'sim')
        procs.append(sim)
        srv, addr = start([tokentap, 'serve', '--listen', '127.0.0.1:0', '--upstream',
                           'http://' + sim_addr, '--log-level', 'warn'], tmp, 'serve')
        procs.append(srv)
        base = 'http://' + addr

        browser = Browser(tmp)
        target = browser.call('Target.createTarget', {'url': 'about:blank'}, session=False)
        att = browser.call('Target.attachToTarget', {'targetId': target['targetId'], 'flatten': True},
                           session=False)
        browser.session = att['sessionId']
        for m in ('Runtime.enable', 'Log.enable', 'Network.enable', 'Page.enable'):
            browser.call(m)
        browser.call('Emulation.setDeviceMetricsOverride',
                     {'width': 1400, 'height': 1800, 'deviceScaleFactor': 1, 'mobile': False})
        browser.call('Page.navigate', {'url': base + '/tokentap/'})
        browser.pump(1.0)
        if browser.js('document.body.dataset.state') != 'live':
            fail('the page did not connect to /tokentap/events: %s' % browser.js('document.body.dataset.state'))

        # Traffic: three sessions, up to five streams at once on two slots.
        results = []
        plan = [('agent-a', 120), ('agent-b', 120), ('agent-c', 60), ('agent-a', 60), ('agent-b', 40)]

        def wave():
            ts = [threading.Thread(target=lambda s=s, n=n: results.append(stream(addr, s, n)))
                  for s, n in plan]
            for t in ts:
                t.start()
                time.sleep(0.05)
            return ts

        threads = wave()
        browser.pump(1.5)
        # Mid-run: lanes in flight, grouped by session, some waiting for a slot.
        now = browser.js('''(() => {
            const lanes = [...document.querySelectorAll('#lanes .lane')];
            return { lanes: lanes.length,
              states: lanes.map((l) => l.dataset.state + '/' + (l.dataset.outcome || '') + '/' + l.dataset.tokens + '/' + l.parentNode.dataset.group),
              groups: [...document.querySelectorAll('#lanes .group')].map((g) => g.dataset.group).sort(),
              tokens: lanes.map((l) => Number(l.dataset.tokens || 0)),
              drawn: lanes.filter((l) => { const c = l.querySelector('canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 0; i < d.length; i += 4) if (d[i] === 0x1f && d[i + 1] === 0x7a && d[i + 2] === 0x35) return true;
                return false; }).length,
              inflight: Number(document.getElementById('k-inflight').textContent) }; })()''')
        going = [st for st in now['states'] if not st.startswith('done')]
        # Answers may end before max_tokens: at least 3 of the 5 go on.
        if len(going) < 3 or len(going) != now['inflight']:
            fail('expected a lane per request in flight, saw %d (%s; the header says %d)' % (
                len(going), now['states'], now['inflight']))
        if now['groups'] != ['agent-a', 'agent-b', 'agent-c']:
            fail('lanes not grouped by session: %s' % now['groups'])
        if not any(st.startswith('gen/') for st in now['states']) or not any(st.startswith('wait/') for st in now['states']):
            fail('expected lanes generating and waiting for a slot (2 slots, 5 requests): %s' % now['states'])
        if now['drawn'] < 1 or max(now['tokens']) < 5:
            fail('no token ticks drawn (%d lanes with ticks, tokens %s)' % (now['drawn'], now['tokens']))
        for t in threads:
            t.join(90)
        threads = wave()  # a second wave: more requests per level
        for t in threads:
            t.join(90)
        if results.count(200) != 10:
            fail('requests failed: %s' % results)
        # Let whole seconds close, the level table go out, finished lanes fade.
        browser.pump(6.5)

        stats = get_json(addr, '/tokentap/stats')
        page = browser.js('''(() => {
            const rows = [...document.querySelectorAll('#level-table tbody tr')].map((tr) =>
              [...tr.cells].map((td) => td.textContent));
            const sum = (id, ds) => Chart.getChart(id).data.datasets[ds].data.reduce((a, p) => a + (p.y || 0), 0);
            const points = (id, ds) => Chart.getChart(id).data.datasets[ds].data.filter((p) => p.y !== null).length;
            return { rows,
              levelBars: Chart.getChart('chart-levels').data.datasets[0].data,
              tokens: sum('chart-tps', 0), ttftPoints: points('chart-ttft', 0), itlPoints: points('chart-itl', 0),
              started: sum('chart-load', 2),
              lanes: document.querySelectorAll('#lanes .lane').length,
              sessions: [...document.querySelectorAll('#session-table tbody tr')].map((tr) =>
                [tr.dataset.session, Number(tr.cells[2].textContent), Number(tr.cells[3].textContent)]),
              recent: document.querySelectorAll('#recent-table tbody tr').length,
              errors: document.getElementById('errors').textContent }; })()''')
        levels = stats['by_concurrency']
        if len(page['rows']) != len(levels) or not levels:
            fail('level table has %d rows, /tokentap/stats %d' % (len(page['rows']), len(levels)))
        for row, lv in zip(page['rows'], levels):
            if row[0] != str(lv['concurrency']) or int(row[1]) != lv['requests']:
                fail('level row %s != stats level %s requests %s' % (row, lv['concurrency'], lv['requests']))
            p50 = float(row[2].replace(',', ''))
            if abs(p50 - lv['ttft_ms']['p50']) > max(0.01, 0.005 * lv['ttft_ms']['p50']):
                fail('level %s TTFT p50 %s on the page, %s in stats' % (row[0], row[2], lv['ttft_ms']['p50']))
        if [round(v, 3) for v in page['levelBars']] != [round(lv['ttft_ms']['p50'], 3) for lv in levels]:
            fail('TTFT-by-level chart %s != stats %s' % (page['levelBars'], [lv['ttft_ms']['p50'] for lv in levels]))
        if page['tokens'] != stats['overall']['token_events']:
            fail('tokens/s chart sums to %s, stats has %s token events' % (page['tokens'], stats['overall']['token_events']))
        if page['started'] != stats['overall']['requests']:
            fail('started/s sums to %s, stats has %s requests' % (page['started'], stats['overall']['requests']))
        if page['ttftPoints'] < 1 or page['itlPoints'] < 2:
            fail('TTFT/ITL charts have %d/%d points' % (page['ttftPoints'], page['itlPoints']))
        if page['lanes'] != 0:
            fail('%d lanes left after every request finished and faded' % page['lanes'])
        want = sorted([s['session'], s['requests'], s['output_tokens']] for s in stats['sessions'])
        if sorted(page['sessions']) != want:
            fail('sessions table %s != stats %s' % (sorted(page['sessions']), want))
        if page['recent'] != 10:
            fail('recent requests table has %d rows, not 10' % page['recent'])

        # Click a session and a request: the timeline and the details.
        detail = browser.js('''(() => {
            document.querySelector('#session-table tbody tr[data-session="agent-a"]').click();
            const tl = document.querySelectorAll('#timeline-rows .tl').length;
            document.querySelector('#recent-table tbody tr').click();
            const d = document.getElementById('detail');
            return { tl, hidden: d.hidden, text: d.textContent,
              bars: [...d.querySelectorAll('.bars div')].filter((b) => parseFloat(b.style.height) > 0).length }; })()''')
        if detail['tl'] != 4:
            fail('agent-a timeline has %d requests, not 4' % detail['tl'])
        if detail['hidden'] or 'TTFT' not in detail['text'] or detail['bars'] < 1:
            fail('request details did not open with a gap histogram: %s' % detail)

        shot = browser.call('Page.captureScreenshot', {'format': 'png'})
        import base64
        with open(os.path.join(shotdir, 'dash-screenshot.png'), 'wb') as f:
            f.write(base64.b64decode(shot['data']))

        if page['errors']:
            fail('errors on the page: ' + page['errors'])
        for ev in browser.events:
            m, p = ev['method'], ev.get('params', {})
            if m == 'Runtime.exceptionThrown':
                fail('exception: %s' % p['exceptionDetails'].get('exception', {}).get('description'))
            elif m == 'Runtime.consoleAPICalled':
                fail('console.%s: %s' % (p['type'], [a.get('value') for a in p.get('args', [])]))
            elif m == 'Log.entryAdded' and p['entry']['level'] in ('error', 'warning'):
                fail('log: %s %s' % (p['entry']['level'], p['entry']['text']))
            elif m == 'Network.requestWillBeSent':
                url = p['request']['url']
                if not url.startswith(base + '/tokentap/'):
                    fail('a request outside the proxy\'s /tokentap/: ' + url)
        asked = sorted({ev['params']['request']['url'] for ev in browser.events
                        if ev['method'] == 'Network.requestWillBeSent'})
        if asked != [base + '/tokentap/', base + '/tokentap/events']:
            fail('the page asked for %s' % asked)
    finally:
        if browser:
            browser.close()
        for p in procs:
            p.terminate()
        for p, name in zip(procs, ('sim', 'serve')):
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            # SIGTERM drains and exits 0; a sanitizer's report exits non-zero.
            if rc != 0:
                fail('%s exited with %d: %s' % (name, rc,
                     open(os.path.join(tmp, name + '.err')).read()[-2000:]))
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        sys.exit(1)
    print('test_dash_browser: ok; screenshot in %s/dash-screenshot.png' % shotdir)


if __name__ == '__main__':
    main()
