#!/usr/bin/env python3
"""docs_examples: run the examples the docs mark and compare what they
print with what the docs show, so a doc that drifts from the program fails
`meson test`. The convention (docs/design.md, "Tests"): an HTML comment
right before a fenced block (or a table) marks it,

    <!-- doc-test -->                     run the block's `$ ` lines
    <!-- doc-test: exit=2 excerpt
    $ tokentap bench --help               hidden commands: setup, or the
    -->                                   command whose output the block is

and the output is compared by shape: numbers and hex ids normalised,
runs of spaces collapsed, blank lines ignored, `...` a gap (a whole line:
any lines; inside a line: any text). A command that ends in `&`, or that
the block shows saying `listening on`, is a server: the runner starts it
on a free 127.0.0.1 port in place of the doc's, and rewrites the doc's
port in every later command of the same file.

Usage: doc_examples.py [FILE.md ...] (default: README.md, docs/*.md,
bench/README.md), run from the checkout; TOKENTAP names the binary.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BLOCK_SECONDS = 20    # everything one block runs, servers' start included
OPTIONS = ('exit', 'excerpt', 'json', 'options', 'file')
DEFAULT_DOCS = ['README.md'] + sorted(glob.glob('docs/*.md')) + ['bench/README.md']
CHECKOUT = ('README.md', 'bench', 'config', 'docs', 'proxy', 'tests')   # seen from the scratch directory


class Fail(Exception):
    pass


class Block:
    def __init__(self, path, line, opts, hidden, lines, table):
        self.where = '%s:%d' % (path, line)
        self.opts = opts        # {'exit': '2', 'excerpt': None, ...}
        self.hidden = hidden    # commands from the comment
        self.lines = lines      # the block's text, fences left out
        self.table = table      # a Markdown table rather than a fenced block


def parse_opts(text, where):
    opts = {}
    for word in text.split():
        key, _, value = word.partition('=')
        if key not in OPTIONS:
            raise Fail('%s: unknown doc-test option %r (options: %s)' % (where, key, ', '.join(OPTIONS)))
        opts[key] = value or None
    return opts


def parse(path):
    """The marked blocks of one Markdown file. A marker inside a fenced
    block is an example of the convention, not a marker."""
    lines = open(path, encoding='utf-8').read().split('\n')
    blocks, i, fence = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.startswith('```'):
            fence = not fence
        if fence or not line.startswith('<!-- doc-test'):
            i += 1
            continue
        where = '%s:%d' % (path, i + 1)
        comment = [line[len('<!-- doc-test'):]]
        while '-->' not in comment[-1]:
            i += 1
            if i == len(lines):
                raise Fail(where + ': doc-test comment without -->')
            comment.append(lines[i])
        comment[-1] = comment[-1][:comment[-1].index('-->')]
        head = comment[0]
        if head.strip() and not head.startswith(':'):
            raise Fail(where + ': write <!-- doc-test --> or <!-- doc-test: OPTIONS -->')
        opts = parse_opts(head[1:], where)
        hidden = []
        for c in comment[1:]:
            if c.startswith('$ '):
                hidden.append(c[2:])
            elif hidden:
                hidden[-1] += '\n' + c      # a here-document or a continuation
            elif c.strip():
                raise Fail(where + ': a hidden command starts with "$ "')
        i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i < len(lines) and lines[i].startswith('```'):
            start = i
            i += 1
            while i < len(lines) and not lines[i].startswith('```'):
                i += 1
            blocks.append(Block(path, start + 1, opts, hidden, lines[start + 1:i], False))
            i += 1
        elif i < len(lines) and lines[i].startswith('|'):
            start = i
            while i < len(lines) and lines[i].startswith('|'):
                i += 1
            blocks.append(Block(path, start + 1, opts, hidden, lines[start:i], True))
        else:
            raise Fail(where + ': a doc-test comment must come right before a fenced block or a table')
    return blocks


def split_commands(lines):
    """[(command, [expected lines])] from a block's `$ ` lines (none: the
    block is output); a line ending in a backslash goes on."""
    cmds = []
    if not any(line.startswith('$ ') for line in lines):
        return cmds
    it = iter(lines)
    for line in it:
        if line.startswith('$ '):
            cmd = line[2:]
            while cmd.endswith('\\'):
                cmd += '\n' + next(it, '')
            cmds.append((cmd, []))
        elif cmds:
            cmds[-1][1].append(line)
        elif line.strip():
            raise Fail('output before the first "$ " line')
    return cmds


# ---- comparing -------------------------------------------------------------

HEX = re.compile(r'\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,}\b')
NUM = re.compile(r'\d+(?:\.\d+)?')
GAP = None


def norm(s):
    """The shape of a line: numbers and hex ids become 0, spaces one."""
    return ' '.join(NUM.sub('0', HEX.sub('0', s)).split())


def pattern(line):
    """An expected line: GAP for a `...` line (a remark may follow),
    else a regex in which an inner `...` stands for any text."""
    if re.fullmatch(r'\s*\.\.\.(\s.*)?', line):
        return GAP
    return re.compile('.*'.join(re.escape(p) for p in norm(line).split('...')))


def lines_of(text):
    return [l for l in text.split('\n') if l.strip()]


def compare_lines(expected, actual):
    """Every expected line matches, in order, the whole of one output line;
    GAPs take any number of lines. Returns None or what went wrong."""
    shown = lines_of('\n'.join(expected))
    raw = lines_of(actual)
    act = [norm(l) for l in raw]
    pos = {0}                   # output lines matched so far, each way
    for line in shown:
        e = pattern(line)
        if e is GAP:
            new = set(range(min(pos), len(act) + 1))
        else:
            new = {j + 1 for j in pos if j < len(act) and e.fullmatch(act[j])}
        if not new:
            j = min(pos)
            return 'the doc shows %r\n    the output has %r' % (line, raw[j] if j < len(raw) else '(its end)')
        pos = new
    if len(act) not in pos:
        return 'the output goes on after the doc\'s last line (a ... line leaves lines out): %r' % raw[max(pos)]
    return None


def compare_excerpt(expected, actual):
    """Every expected line is found, in order, inside some output line."""
    act = [norm(l) for l in lines_of(actual)]
    j = 0
    for line in expected:
        e = pattern(line)
        if e is GAP or not line.strip():
            continue
        while j < len(act) and not e.search(act[j]):
            j += 1
        if j == len(act):
            return 'not in the output (in this order): %r' % line
        j += 1
    return None


def is_wild(v):
    return isinstance(v, str) and '...' in v


def json_shape(doc, act, path='$'):
    """The doc's JSON against the output's: the same keys (a "..." key
    allows more), the same types (null goes with any), arrays element by
    element against the doc's elements ("..." strings stand for more)."""
    if doc is None or act is None or is_wild(doc):
        return None
    if kind(doc) != kind(act):
        return '%s: %s in the doc, %s in the output' % (path, kind(doc), kind(act))
    if isinstance(doc, dict):
        missing = [k for k in doc if k != '...' and k not in act]
        extra = [k for k in act if k not in doc] if '...' not in doc else []
        if missing or extra:
            return '%s: keys only in the doc %s, only in the output %s' % (path, missing, extra)
        for k in doc:
            if k != '...':
                err = json_shape(doc[k], act[k], path + '.' + k)
                if err:
                    return err
        return None
    if isinstance(doc, list):
        shown = [d for d in doc if not is_wild(d)]
        if shown and not act:
            return '%s: the doc shows elements, the output has none' % path
        for n, a in enumerate(act):
            errs = [json_shape(d, a, '%s[%d]' % (path, n)) for d in shown]
            if shown and all(errs):
                return errs[-1]
    return None


def kind(v):
    return {bool: 'a boolean', int: 'a number', float: 'a number', str: 'a string',
            list: 'an array', dict: 'an object'}[type(v)]


def loosen(text):
    """The docs' abbreviated JSON made JSON: `{ ... }`, `[...]` and a bare
    `...` (outside strings) become the wildcard string "..."."""
    out, i, in_str = [], 0, False
    while i < len(text):
        c = text[i]
        if in_str:
            out.append(c)
            if c == '\\':
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c in '{[' and text[i + 1:].lstrip().startswith('...'):
            i = text.index('}' if c == '{' else ']', i)
            out.append('"..."')
        elif text.startswith('...', i):
            out.append('"..."')
            i += 2
        else:
            out.append(c)
        i += 1
    return ''.join(out)


def json_values(text):
    """One JSON value, or JSON lines."""
    try:
        return [json.loads(text)]
    except ValueError:
        return [json.loads(line) for line in text.split('\n') if line.strip()]


def compare_json(expected, actual, path):
    """With a path (keys joined by dots), the doc shows the value there.
    When that is an array and the doc shows no array: each element.
    JSON lines are compared line by line."""
    try:
        docs = json_values(loosen('\n'.join(expected)))
    except ValueError as e:
        return 'the block is not JSON: %s' % e
    try:
        acts = json_values(actual)
    except ValueError as e:
        return 'the output is not JSON (%s): %r' % (e, actual[:300])
    if len(docs) > 1 or len(acts) > 1:
        if len(docs) != len(acts) or path:
            return 'the doc shows %d JSON lines, the output has %d' % (len(docs), len(acts))
        errs = [json_shape(d, a, 'line %d' % (n + 1)) for n, (d, a) in enumerate(zip(docs, acts))]
        return next(filter(None, errs), None)
    doc, act = docs[0], acts[0]
    for key in path.split('.') if path else []:
        if not isinstance(act, dict) or key not in act:
            return 'the output has no %s' % path
        act = act[key]
    if isinstance(act, list) and not isinstance(doc, list):
        if not act:
            return 'the output\'s %s is empty' % (path or 'array')
        return next(filter(None, (json_shape(doc, a, '%s[%d]' % (path, n)) for n, a in enumerate(act))), None)
    return json_shape(doc, act, path or '$')


OPT = re.compile(r'(?<![\w-])--[a-z][a-z0-9-]*')


def compare_options(block, expected, actual):
    """A synopsis names only options the --help output defines; a table's
    first column lists exactly those (--help aside)."""
    defined = set()
    for line in actual.split('\n'):
        m = re.match(r'\s+(?:-\w, )?(--[a-z][a-z0-9-]*)', line)
        if m:
            defined.add(m.group(1))
    defined.discard('--help')
    if not defined:
        return 'the output defines no options'
    if block.table:
        shown = set()
        for row in expected[2:]:
            shown.update(OPT.findall(row.split('|')[1]))
    else:
        shown = set(OPT.findall('\n'.join(expected)))
    if not shown:
        return 'the block names no options'
    errs = []
    if shown - defined:
        errs.append('--help has no %s' % ' '.join(sorted(shown - defined)))
    if block.table and defined - shown:
        errs.append('the table has no %s' % ' '.join(sorted(defined - shown)))
    return '; '.join(errs) or None


# ---- running ---------------------------------------------------------------

ADDR = re.compile(r'\b(127\.0\.0\.1|localhost):(\d+)\b')
LISTEN = re.compile(r'(--listen[ =]|-l )(127\.0\.0\.1|localhost):(\d+)')
LISTENING = re.compile(r'^listening on \S+:(\d+)', re.M)
BACKGROUND = re.compile(r'\s*&\s*(#.*)?$')


class Session:
    """One file's examples: a scratch directory that looks like the
    checkout (tokentap and build/tokentap are the binary under test), the
    servers its examples started and the doc ports they stand in for."""

    def __init__(self, tokentap):
        self.dir = tempfile.mkdtemp(prefix='doc-examples-')
        for name in CHECKOUT:
            os.symlink(os.path.abspath(name), os.path.join(self.dir, name))
        for d in ('bin', 'build'):
            os.mkdir(os.path.join(self.dir, d))
            os.symlink(tokentap, os.path.join(self.dir, d, 'tokentap'))
        # curl prints its progress meter when stdout is not a terminal;
        # the docs show what a terminal shows.
        with open(os.path.join(self.dir, '.curlrc'), 'w') as f:
            f.write('silent\nshow-error\n')
        self.env = dict(os.environ, PATH=os.path.join(self.dir, 'bin') + ':' + os.environ['PATH'],
                        CURL_HOME=self.dir, TOKENTAP=tokentap)
        self.ports = {}         # doc port -> real port
        self.servers = []       # (Popen, stderr file)

    def close(self):
        for p, err in self.servers:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            err.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ports_in(self, cmd):
        """The doc's ports of the servers started so far made real; other
        ports stay (nothing listens there: connection refused)."""
        def real(m):
            port = self.ports.get(int(m.group(2)))
            return '%s:%d' % (m.group(1), port) if port else m.group(0)
        return ADDR.sub(real, cmd)

    def run(self, cmd, deadline):
        """A command to its end: (exit status, stdout and stderr)."""
        p = subprocess.Popen(['sh', '-c', self.ports_in(cmd)], cwd=self.dir, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)     # the shell and what it started
            p.communicate()
            raise Fail('still running after %d s: %s' % (BLOCK_SECONDS, cmd))
        return p.returncode, out.decode('utf-8', 'replace')

    def start(self, cmd, shown, deadline):
        """A server: started on a free port, waited for until it says
        `listening on`; returns what it printed until then. The doc's
        port is --listen's, or with port 0 the one `shown` says."""
        cmd = BACKGROUND.sub('', cmd)
        m = LISTEN.search(cmd)
        if not m:
            raise Fail('a background command needs --listen HOST:PORT: ' + cmd)
        doc_port = int(m.group(3))
        if doc_port == 0:       # the port the doc shows it got
            said = LISTENING.search(shown)
            doc_port = int(said.group(1)) if said else 0
        cmd = cmd[:m.start()] + m.group(1) + '127.0.0.1:0' + cmd[m.end():]
        err = tempfile.TemporaryFile()
        p = subprocess.Popen(['sh', '-c', 'exec ' + self.ports_in(cmd)], cwd=self.dir, env=self.env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                             start_new_session=True)
        self.servers.append((p, err))
        out = []             # its stdout, read on (a full pipe would stall it)

        def read():
            for line in iter(p.stdout.readline, b''):
                out.append(line)
        threading.Thread(target=read, daemon=True).start()
        while True:
            said = [l.decode('utf-8', 'replace') for l in list(out)]
            ready = [n for n, l in enumerate(said) if LISTENING.match(l)]
            if ready:
                said = said[:ready[0] + 1]
                break
            if p.poll() is not None or time.time() > deadline:
                err.seek(0)
                raise Fail('%s did not say "listening on": %s' % (cmd, err.read().decode('utf-8', 'replace')))
            time.sleep(0.02)
        if doc_port:
            self.ports[doc_port] = int(LISTENING.match(said[-1]).group(1))
        return ''.join(said)

    def check(self, block):
        """Runs one block; raises Fail with what differs."""
        deadline = time.time() + BLOCK_SECONDS
        opts = block.opts
        want_exit = int(opts.get('exit') or 0)
        cmds = [] if block.table or 'file' in opts else split_commands(block.lines)
        if 'file' in opts:
            if not opts['file']:
                raise Fail('file= needs a name')
            with open(os.path.join(self.dir, opts['file']), 'w') as f:
                f.write('\n'.join(block.lines) + '\n')
        measured = not cmds     # the hidden commands' output is the block
        output = ''
        for cmd in block.hidden:
            if BACKGROUND.search(cmd):
                self.start(cmd, '', deadline)
                continue
            rc, out = self.run(cmd, deadline)
            if rc != (want_exit if measured else 0):
                raise Fail('exit %d from %s\n%s' % (rc, cmd, out))
            output += out
        if not cmds:
            if not block.hidden:
                raise Fail('nothing to run: no "$ " line in the block or its comment')
            if 'file' in opts:
                return
            return self.compare(block, block.lines, output)
        for cmd, expected in cmds:
            if BACKGROUND.search(cmd) or LISTENING.search('\n'.join(expected)):
                out = self.start(cmd, '\n'.join(expected), deadline)
            else:
                rc, out = self.run(cmd, deadline)
                if rc != want_exit:
                    raise Fail('exit %d (not %d) from %s\n%s' % (rc, want_exit, cmd, out))
            self.compare(block, expected, out, cmd)

    def compare(self, block, expected, output, cmd=None):
        opts = block.opts
        if 'json' in opts:
            err = compare_json(expected, output, opts['json'])
        elif 'options' in opts:
            err = compare_options(block, expected, output)
        elif 'excerpt' in opts:
            err = compare_excerpt(expected, output)
        else:
            err = compare_lines(expected, output)
        if err:
            shown = '\n'.join(l if len(l) < 300 else l[:300] + '...' for l in output.rstrip().split('\n')[:80])
            raise Fail('%s%s\n--- output (cut at 80 lines of 300 bytes):\n%s' % ('$ %s\n' % cmd if cmd else '', err, shown))


def main():
    tokentap = os.path.abspath(os.environ.get('TOKENTAP', 'build/tokentap'))
    files = sys.argv[1:] or [f for f in DEFAULT_DOCS if os.path.exists(f)]
    ran, failed = 0, 0
    for path in files:
        try:
            blocks = parse(path)
        except Fail as e:
            print('FAIL %s' % e)
            failed += 1
            continue
        if not blocks:
            continue
        session = Session(tokentap)
        try:
            for block in blocks:
                ran += 1
                t = time.time()
                try:
                    session.check(block)
                    print('ok   %s (%.1f s)' % (block.where, time.time() - t))
                except Fail as e:
                    failed += 1
                    print('FAIL %s: %s\n' % (block.where, e))
        finally:
            session.close()
        sys.stdout.flush()
    print('docs_examples: %d marked blocks, %d failed' % (ran, failed))
    if ran == 0:
        print('docs_examples: no marked block found (<!-- doc-test --> before a block)')
        return 1
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
