#!/usr/bin/env python3
"""The layer rule: a folder of proxy/ uses only the folders below it.

    layers.py PROXY_DIR LIBRARY LAYER [LAYER ...]

LAYERs are the folders, lowest first (proxy/meson.build's `layers`). Two
checks, each printing every breach as file:line or object: symbol:
  - includes: `#include "layer/name.h"` in proxy/<layer>/ names only its
    own layer or one listed before it (main.c, at the top, may use all);
  - calls: every symbol an object file of the library uses and another of
    its objects defines (nm) is defined in the same layer or one below, so
    a call or a data reference cannot run up a layer either.
Exits 1 on any breach, or when it found nothing to check.
"""
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of_object(path, layers):
    """meson names an object of proxy/<layer>/x.c '<layer>_x.c.o'; a
    generated one (proxy/meson.build names it '<layer>_...c') has meson's
    prefix before that."""
    name = os.path.basename(path).split('meson-generated_.._')[-1]
    for layer in layers:
        if name.startswith(layer + '_'):
            return layer
    return None


def check_includes(proxy, layers, rank):
    breaches, seen = [], 0
    for layer in sorted(os.listdir(proxy)):
        folder = os.path.join(proxy, layer)
        if not os.path.isdir(folder):
            continue
        if layer not in rank:
            breaches.append(f'{folder}: a folder that is not a layer (add it to proxy/meson.build)')
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(('.c', '.h')):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding='utf-8') as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    seen += 1
                    target = m.group(1)
                    dep = target.split('/')[0] if '/' in target else None
                    if dep not in rank:
                        breaches.append(f'{path}:{lineno}: include "{target}": '
                                        'name it as "layer/file.h"')
                    elif rank[dep] > rank[layer]:
                        breaches.append(f'{path}:{lineno}: {layer} includes "{target}", '
                                        f'a layer above it ({dep})')
    return breaches, seen


def symbols(library):
    out = subprocess.run(['nm', '-A', '--defined-only', library], capture_output=True,
                         text=True, check=True).stdout
    defined = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-2] in 'TDRBC':
            obj = parts[0].rsplit(':', 2)[-2] if parts[0].count(':') >= 2 else parts[0]
            defined[parts[-1]] = obj
    out = subprocess.run(['nm', '-A', '--undefined-only', library], capture_output=True,
                         text=True, check=True).stdout
    used = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] == 'U':
            obj = parts[0].rstrip(':').rsplit(':', 1)[-1]
            used.append((obj, parts[-1]))
    return defined, used


def check_calls(library, layers, rank):
    defined, used = symbols(library)
    breaches, seen = [], 0
    for obj, sym in used:
        if sym not in defined:
            continue  # libc, libevent, cJSON, ...
        seen += 1
        caller = layer_of_object(obj, layers)
        callee = layer_of_object(defined[sym], layers)
        if caller is None or callee is None:
            breaches.append(f'{obj}: {sym}: object outside the layers')
        elif rank[callee] > rank[caller]:
            breaches.append(f'{os.path.basename(obj)}: uses {sym} from '
                            f'{os.path.basename(defined[sym])}, a layer above ({callee} > {caller})')
    return breaches, seen


def main():
    if len(sys.argv) < 4:
        sys.exit('usage: layers.py PROXY_DIR LIBRARY LAYER [LAYER ...]')
    proxy, library, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
    rank = {layer: i for i, layer in enumerate(layers)}
    inc, n_inc = check_includes(proxy, layers, rank)
    calls, n_calls = check_calls(library, layers, rank)
    for b in inc + calls:
        print(b)
    print(f'layers: {" < ".join(layers)}; {n_inc} includes, {n_calls} cross-object '
          f'references checked; {len(inc) + len(calls)} breaches')
    if n_inc == 0 or n_calls == 0:
        print('layers: nothing was checked: wrong paths?')
        sys.exit(1)
    sys.exit(1 if inc or calls else 0)


if __name__ == '__main__':
    main()
