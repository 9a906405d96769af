#!/bin/sh
# Renders report.html (one run, and a compare page) in headless Chromium and
# fails on any JavaScript exception or console message: the page sets
# <body data-charts="ok"> only when every chart was created without one, and
# writes exceptions into <pre id="errors">. Leaves screenshots in SHOTDIR
# for a human to look at. Skips (exit 77) when chromium is not installed.
# Needs TOKENTAP and FIXTURES; SHOTDIR defaults to the current directory.
set -u
: "${TOKENTAP:?}" "${FIXTURES:?}"
shotdir=${SHOTDIR:-.}
if ! command -v chromium >/dev/null 2>&1; then
    echo "test_report_browser: SKIP: chromium is not installed (apt-get install chromium)" >&2
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "test_report_browser: FAIL: $*" >&2
    failures=$((failures + 1))
}

# chrome NAME ARGS...: headless Chromium with no network, no profile, no
# background services; stdout in $tmp/NAME.out, log in $tmp/NAME.log.
# (sh has no local variables: chrome and check use different names.)
chrome() {
    run=$1
    shift
    mkdir -p "$tmp/profile-$run" "$tmp/home"
    HOME="$tmp/home" timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --user-data-dir="$tmp/profile-$run" --enable-logging=stderr --v=0 \
        "$@" >"$tmp/$run.out" 2>"$tmp/$run.log"
}

# check NAME PAGE CANVASES: the page rendered without errors, all charts drawn.
check() {
    name=$1 page=$2 canvases=$3
    chrome "$name-dom" --dump-dom "file://$page" || fail "$name: chromium exited with $?"
    dom="$tmp/$name-dom.out"
    grep -q '<body data-charts="ok">' "$dom" ||
        fail "$name: charts not all created: $(grep -o '<body[^>]*>' "$dom")"
    grep -q '<pre id="errors" hidden=""></pre>' "$dom" ||
        fail "$name: errors on the page: $(sed -n '/<pre id="errors"/,/<\/pre>/p' "$dom" | head -20)"
    # Chart.js sizes every canvas it draws on.
    drawn=$(grep -o '<canvas id="chart-[a-z0-9-]*"[^>]*box-sizing' "$dom" | wc -l)
    [ "$drawn" -eq "$canvases" ] || fail "$name: $drawn of $canvases canvases drawn"
    if grep -q 'CONSOLE' "$tmp/$name-dom.log"; then
        fail "$name: console output: $(grep 'CONSOLE' "$tmp/$name-dom.log" | head -5)"
    fi
    chrome "$name-shot" --window-size=1400,3000 --hide-scrollbars \
        --screenshot="$shotdir/$name-screenshot.png" "file://$page" ||
        fail "$name: screenshot failed"
    [ -s "$shotdir/$name-screenshot.png" ] || fail "$name: no screenshot"
}

mkdir "$tmp/run"
"$TOKENTAP" report "$FIXTURES/results-quant.json" --out "$tmp/run" --html >/dev/null ||
    fail "tokentap report failed"
"$TOKENTAP" compare "$FIXTURES/results-single-a.json" "$FIXTURES/results-single-b.json" \
    --html --out "$tmp/compare.html" || fail "tokentap compare failed"

check report "$tmp/run/report.html" 6
check compare "$tmp/compare.html" 6

# And a report that tokentap bench wrote itself, on the simulator.
(cd "$FIXTURES/.." && "$TOKENTAP" bench fixtures/scenario-tiny.yaml --out "$tmp/bench" -q --allow-failures >/dev/null) ||
    fail "tokentap bench failed"
check bench "$tmp/bench/report.html" 7

# A capacity search, and two side by side: a chart per objective (the
# limit drawn) besides the usual ones.
(cd "$FIXTURES/.." && "$TOKENTAP" bench fixtures/scenario-capacity.yaml --capacity --out "$tmp/cap3" -q >/dev/null) ||
    fail "tokentap bench --capacity failed"
printf 'slots: 2\nprefill_tps: 50000\ndecode_tps: 100\n' >"$tmp/two-slots.yaml"
(cd "$FIXTURES/.." && "$TOKENTAP" bench fixtures/scenario-capacity.yaml --capacity \
    --target "three=$tmp/two-slots.yaml" --out "$tmp/cap2" -q >/dev/null) ||
    fail "tokentap bench --capacity on 2 slots failed"
"$TOKENTAP" compare "$tmp/cap3/results.json" "$tmp/cap2/results.json" --html \
    --out "$tmp/capacity-compare.html" || fail "tokentap compare of two capacity runs failed"
check capacity "$tmp/cap3/report.html" 8
check capacity-compare "$tmp/capacity-compare.html" 8
grep -q 'chart-capacity-1' "$tmp/capacity-compare.html" || fail "capacity compare: no chart per objective"

# A page whose chart code throws must be caught: the check itself works.
sed 's/Chart.defaults.animation = false;/Chart.defaults.animation = false; null.boom;/' \
    "$tmp/compare.html" >"$tmp/broken.html"
chrome broken --dump-dom "file://$tmp/broken.html"
grep -q '<body data-charts="error">' "$tmp/broken.out" || fail "a throwing page was not flagged"
grep -q 'charts: TypeError: Cannot read properties of null' "$tmp/broken.out" ||
    fail "the exception did not reach <pre id=errors>"

echo "test_report_browser: screenshots in $shotdir/report-screenshot.png, $shotdir/compare-screenshot.png, $shotdir/bench-screenshot.png, $shotdir/capacity-screenshot.png, $shotdir/capacity-compare-screenshot.png" >&2
[ "$failures" -eq 0 ]
