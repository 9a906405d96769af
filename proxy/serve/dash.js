/* tokentap's live dashboard: reads /tokentap/events (Server-Sent Events)
 * and draws it. Frames carry what changed since the last one (lanes and
 * their new token times, finished requests, sessions, whole seconds); a
 * frame marked full starts over. Times are ms since the server's start;
 * `offset` maps them to this page's clock. Loads nothing else. */
'use strict';

const WINDOW_MS = 10000;   /* lanes show this much history */
const FADE_MS = 5000;      /* a finished lane fades out over this */
const KEEP_DONE = 2000;    /* finished requests kept for the tables */
const RECENT_ROWS = 200;   /* rows of the recent-requests table */
const SESSION_ROWS = 100;
const GAP_LABELS = ['<1', '<2', '<4', '<8', '<16', '<32', '<64', '<128', '<256', '<512',
  '<1s', '<2s', '<4s', '<8s', '<16s', '≥16s'];

const $ = (id) => document.getElementById(id);
const state = {
  offset: null, frames: 0, lanes: new Map(), groups: new Map(), done: [], doneIds: new Set(),
  sessions: new Map(), seconds: [new Map()], upstreams: [], levels: [], series: 0,
  selSession: null, selRequest: null, dirtyTables: true, dirtySeconds: true, dirtyLevels: false,
  hidden: 0, lastTables: 0,
};
const charts = {};

function fail(what, e) {
  const pre = $('errors');
  pre.hidden = false;
  pre.textContent += what + ': ' + (e && e.stack ? e.stack : e) + '\n';
  document.body.dataset.errors = 'yes';
}
window.addEventListener('error', (ev) => fail('error', ev.error || ev.message));
window.addEventListener('unhandledrejection', (ev) => fail('promise', ev.reason));

function nowMs() { return state.offset === null ? 0 : performance.now() + state.offset; }
function fmtMs(v) {
  if (v === null || v === undefined) return '–';
  if (v < 10) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return Math.round(v).toLocaleString('en-US');
}
function fmtNum(v, d) { return v === null || v === undefined ? '–' : Number(v).toFixed(d || 0); }
function ago(ms) {
  const s = Math.max(0, (nowMs() - ms) / 1000);
  if (s < 60) return s.toFixed(0) + ' s ago';
  if (s < 3600) return (s / 60).toFixed(0) + ' min ago';
  return (s / 3600).toFixed(1) + ' h ago';
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function thinkingName(t) { return t < 0 ? '' : t ? 'thinking on' : 'thinking off'; }

/* --- lanes --- */

function groupFor(g, gs) {
  let grp = state.groups.get(g);
  if (grp) return grp;
  const box = el('div', 'group');
  box.dataset.group = g;
  const h = el('div', 'ghead', g || '(no session)');
  h.appendChild(el('small', '', gs ? 'session' : 'client'));
  box.appendChild(h);
  $('lanes').appendChild(box);
  grp = { box, n: 0 };
  state.groups.set(g, grp);
  return grp;
}

function laneNew(l) {
  const ln = { id: l.id, rid: l.rid ?? l.id, g: l.g || '', gs: !!l.gs, m: l.m || '', u: l.u || '', th: l.th ?? -1,
    t0: l.t0 ?? nowMs(), ticks: [] };
  const row = el('div', 'lane');
  row.dataset.id = l.id;
  ln.stEl = el('span', 'st');
  ln.nEl = el('span', 'n', '0');
  const info = el('span', 'info');
  info.appendChild(ln.stEl);
  info.appendChild(ln.nEl);
  info.appendChild(el('span', 'meta', [ln.m || 'no model', ln.u, thinkingName(ln.th)]
    .filter(Boolean).join(' · ')));
  row.appendChild(info);
  ln.canvas = el('canvas');
  row.appendChild(ln.canvas);
  ln.row = row;
  ln.group = groupFor(ln.g, ln.gs);
  ln.group.box.appendChild(row);
  ln.group.n++;
  sizeCanvas(ln);
  state.lanes.set(l.id, ln);
  return ln;
}

function sizeCanvas(ln) {
  const dpr = window.devicePixelRatio || 1;
  ln.canvas.width = Math.max(1, Math.round(ln.canvas.clientWidth * dpr));
  ln.canvas.height = Math.max(1, Math.round(14 * dpr));
}

function laneRemove(ln) {
  ln.row.remove();
  state.lanes.delete(ln.id);
  if (--ln.group.n === 0) {
    ln.group.box.remove();
    state.groups.delete(ln.g);
  }
}

function laneUpdate(l) {
  const ln = state.lanes.get(l.id) || laneNew(l);
  ln.st = l.st; ln.h = l.h; ln.f = l.f; ln.e = l.e; ln.o = l.o; ln.n = l.n;
  for (const t of l.k) ln.ticks.push(t);
  ln.row.dataset.state = l.st;
  ln.row.dataset.tokens = l.n;
  if (l.o) ln.row.dataset.outcome = l.o;
  ln.stEl.textContent = l.st === 'done' ? l.o : l.st === 'gen' ? 'generating' : l.st === 'wait' ? 'waiting' : l.st;
  ln.nEl.textContent = l.n;
}

function drawLane(ln, now) {
  const c = ln.canvas, ctx = c.getContext('2d'), W = c.width, H = c.height;
  const x = (t) => W * (1 - (now - t) / WINDOW_MS);
  ctx.clearRect(0, 0, W, H);
  const end = ln.e ?? now;
  const band = (from, to, color) => {
    if (from === null || from === undefined) return;
    const a = Math.max(0, x(from)), b = Math.min(W, x(to ?? end));
    if (b > a) { ctx.fillStyle = color; ctx.fillRect(a, 0, b - a, H); }
  };
  band(ln.t0, ln.h ?? end, '#c8ccd4');
  band(ln.h, ln.f ?? end, '#f0b429');
  band(ln.f, end, '#cdeccf');
  ctx.fillStyle = '#1f7a35';
  const cut = now - WINDOW_MS;
  let drop = 0;
  while (drop < ln.ticks.length && ln.ticks[drop] < cut) drop++;
  if (drop) ln.ticks.splice(0, drop);
  const w = Math.max(1, Math.round(window.devicePixelRatio || 1));
  for (const t of ln.ticks) ctx.fillRect(Math.round(x(t)), 1, w, H - 2);
}

function drawLanes() {
  const now = nowMs();
  for (const ln of [...state.lanes.values()]) {
    if (ln.st === 'done') {
      const age = now - ln.e;
      if (age >= FADE_MS) { laneRemove(ln); continue; }
      ln.row.style.opacity = (1 - age / FADE_MS).toFixed(2);
    }
    drawLane(ln, now);
  }
  $('lanes-empty').hidden = state.lanes.size > 0;
  $('hidden-note').textContent = state.hidden ? `· ${state.hidden} more in flight not shown` : '';
}

/* --- frames --- */

function reset() {
  for (const ln of [...state.lanes.values()]) laneRemove(ln);
  state.done = [];
  state.doneIds.clear();
  state.sessions.clear();
  state.seconds = [new Map()];
}

function onFrame(f) {
  state.offset = f.now - performance.now();
  state.frames++;
  document.body.dataset.frames = state.frames;
  if (f.full) reset();
  state.hidden = f.hidden;
  $('k-inflight').textContent = f.in_flight;
  $('k-queued').textContent = f.queued;
  state.upstreams = f.upstreams;
  for (const l of f.lanes) laneUpdate(l);
  for (const d of f.done) {
    if (state.doneIds.has(d.id)) continue;
    state.doneIds.add(d.id);
    state.done.push(d);
  }
  if (state.done.length > KEEP_DONE) {
    for (const d of state.done.splice(0, state.done.length - KEEP_DONE)) state.doneIds.delete(d.id);
  }
  for (const s of f.sessions) state.sessions.set(s.g, s);
  for (const row of f.seconds) {
    const i = row[0];
    while (state.seconds.length <= i) state.seconds.push(new Map());
    state.seconds[i].set(row[1], row);
  }
  const last = Math.floor(f.now / 1000);
  for (const m of state.seconds) for (const k of m.keys()) if (k < last - 900) m.delete(k);
  if (f.done.length || f.sessions.length || f.full) state.dirtyTables = true;
  if (f.seconds.length || f.full) state.dirtySeconds = true;
}

/* --- the level table and chart --- */

function renderLevels() {
  const tb = $('level-table').tBodies[0];
  tb.textContent = '';
  for (const r of state.levels) {
    const tr = el('tr');
    tr.dataset.level = r.concurrency;
    const cells = [r.concurrency, r.requests, fmtMs(r.ttft_ms.p50), fmtMs(r.ttft_ms.p90),
      fmtMs(r.ttft_ms.p99), fmtMs(r.slot_wait_ms.p50), fmtMs(r.prefill_ms.p50), fmtMs(r.itl_ms.p50),
      fmtMs(r.itl_ms.p99), fmtNum(r.decode_tps.p50, 1)];
    for (const c of cells) tr.appendChild(el('td', '', String(c)));
    tb.appendChild(tr);
  }
  const ch = charts.levels;
  ch.data.labels = state.levels.map((r) => String(r.concurrency));
  ['p50', 'p90', 'p99'].forEach((p, i) => {
    ch.data.datasets[i].data = state.levels.map((r) => r.ttft_ms[p] ?? null);
  });
  ch.update('none');
}

/* --- over time --- */

function renderSeconds() {
  const pick = $('series-pick');
  if (state.upstreams.length > 1) {
    pick.hidden = false;
    while (pick.options.length - 1 < state.upstreams.length) {
      const i = pick.options.length;
      const o = el('option', '', state.upstreams[i - 1]);
      o.value = String(i);
      pick.appendChild(o);
    }
  }
  const m = state.seconds[state.series] || new Map();
  const rows = [...m.values()].sort((a, b) => a[1] - b[1]);
  const now = nowMs() / 1000;
  const pts = (col) => rows.map((r) => ({ x: r[1] - now, y: r[col] }));
  /* Up to 15 minutes: the axis grows with the data, from one minute. */
  const span = rows.length ? Math.min(900, Math.max(60, Math.ceil(now - rows[0][1]) + 5)) : 60;
  const step = span <= 120 ? 10 : span <= 300 ? 30 : 60;
  const set = (ch, cols) => {
    cols.forEach((c, i) => { ch.data.datasets[i].data = pts(c); });
    ch.options.scales.x.min = -span;
    ch.options.scales.x.ticks.stepSize = step;
    ch.update('none');
  };
  set(charts.ttft, [8, 9, 10]);
  set(charts.itl, [11, 12, 13]);
  set(charts.tps, [5, 4]);
  set(charts.load, [6, 7, 2]);
  let fin = 0, errs = 0;
  for (const r of (state.seconds[0] || new Map()).values()) { fin += r[3]; errs += r[4]; }
  $('k-done').textContent = fin;
  $('k-errors').textContent = errs;
  const last5 = rows.slice(-5);
  $('k-tps').textContent = last5.length ? Math.round(last5.reduce((a, r) => a + r[5], 0) / last5.length) : 0;
}

/* --- sessions and recent requests --- */

function renderSessions() {
  const tb = $('session-table').tBodies[0];
  tb.textContent = '';
  const list = [...state.sessions.values()].sort((a, b) => b.last - a.last).slice(0, SESSION_ROWS);
  for (const s of list) {
    const tr = el('tr', 'click' + (s.g === state.selSession ? ' sel' : ''));
    tr.dataset.session = s.g;
    const cells = [s.g || '(none)', s.in_flight, s.requests, s.tokens, fmtMs(s.ttft_p50),
      fmtMs(s.ttft_max), s.errors, ago(s.last)];
    cells.forEach((c, i) => {
      const td = el('td', i === 6 && s.errors ? 'bad' : '', String(c));
      tr.appendChild(td);
    });
    tr.addEventListener('click', () => { state.selSession = s.g; renderSessions(); renderTimeline(); });
    tb.appendChild(tr);
  }
  if (state.selSession !== null) renderTimeline();
}

function renderTimeline() {
  const g = state.selSession;
  const reqs = state.done.filter((d) => d.g === g).slice(-60);
  const live = [...state.lanes.values()].filter((l) => l.g === g && l.st !== 'done');
  $('timeline').hidden = false;
  $('timeline-title').textContent = `${g}: ${reqs.length} finished, ${live.length} in flight`;
  const box = $('timeline-rows');
  box.textContent = '';
  const now = nowMs();
  const items = reqs.map((d) => ({ t0: d.t0, w: d.slot_wait, ttft: d.ttft, end: d.t0 + d.e2e,
    bad: d.o !== 'ok', lab: `#${d.rid} ${d.o} ${d.tokens} tok` }))
    .concat(live.map((l) => ({ t0: l.t0, w: l.h !== null && l.h !== undefined ? l.h - l.t0 : null,
      ttft: l.f !== null && l.f !== undefined ? l.f - l.t0 : null, end: now, bad: false,
      lab: `#${l.rid} ${l.st} ${l.n || 0} tok` })));
  if (!items.length) return;
  const lo = Math.min(...items.map((i) => i.t0)), hi = Math.max(...items.map((i) => i.end), lo + 1);
  const pct = (t) => (100 * (t - lo) / (hi - lo)).toFixed(3) + '%';
  for (const it of items.sort((a, b) => a.t0 - b.t0)) {
    const row = el('div', 'tl' + (it.bad ? ' bad' : ''));
    const span = (cls, a, b) => {
      if (b <= a) return;
      const s = el('span', cls);
      s.style.left = pct(a);
      s.style.width = `calc(${pct(b)} - ${pct(a)})`;
      row.appendChild(s);
    };
    const head = it.t0 + (it.w ?? 0), first = it.ttft !== null ? it.t0 + it.ttft : it.end;
    span('w', it.t0, head);
    span('p', head, first);
    span('g', first, it.end);
    const lab = el('span', 'lab', it.lab);
    lab.style.left = `calc(${pct(it.end)} + 4px)`;
    if (it.end - lo > 0.7 * (hi - lo)) { lab.style.left = ''; lab.style.right = `calc(100% - ${pct(it.t0)} + 4px)`; }
    row.appendChild(lab);
    box.appendChild(row);
  }
}

function renderRecent() {
  const tb = $('recent-table').tBodies[0];
  tb.textContent = '';
  const list = state.done.slice(-RECENT_ROWS).reverse();
  for (const d of list) {
    const tr = el('tr', 'click' + (d.id === state.selRequest ? ' sel' : ''));
    tr.dataset.id = d.id;
    const cells = [d.rid, ago(d.t0 + d.e2e), d.g || '(none)', d.m, d.o, d.level, fmtMs(d.ttft),
      d.tokens, fmtNum(d.tps, 1), fmtMs(d.e2e)];
    cells.forEach((c, i) => tr.appendChild(el('td', i === 4 && d.o !== 'ok' ? 'bad' : '', String(c))));
    tr.addEventListener('click', () => { state.selRequest = d.id; renderRecent(); renderDetail(); });
    tb.appendChild(tr);
  }
}

function renderDetail() {
  const d = state.done.find((x) => x.id === state.selRequest);
  const box = $('detail');
  box.textContent = '';
  if (!d) { box.hidden = true; return; }
  box.hidden = false;
  box.appendChild(el('h3', '', `Request #${d.rid}`));
  const dl = el('dl');
  const add = (k, v) => { dl.appendChild(el('dt', '', k)); dl.appendChild(el('dd', '', String(v))); };
  add('session or client', d.g || '(none)');
  add('route', d.route);
  add('model', d.m || '–');
  add('upstream', d.u);
  add('outcome', d.o + (d.error ? ` (${d.error})` : '') + (d.finish ? `, finish: ${d.finish}` : ''));
  add('status', d.status);
  add('thinking', thinkingName(d.th) || 'unknown');
  add('concurrency level', d.level);
  add('slot wait', fmtMs(d.slot_wait) + ' ms');
  add('prefill', fmtMs(d.prefill) + ' ms');
  add('TTFT', fmtMs(d.ttft) + ' ms');
  add('E2E', fmtMs(d.e2e) + ' ms');
  add('output tokens', d.tokens + ` (${d.events} token events)`);
  add('prompt tokens', d.prompt < 0 ? '–' : d.prompt + (d.cached > 0 ? ` (${d.cached} cached)` : ''));
  add('decode tok/s', fmtNum(d.tps, 1));
  add('rewrite rules applied', d.rules || 'none');
  box.appendChild(dl);
  box.appendChild(el('h3', '', 'Token gaps (ms)'));
  const bars = el('div', 'bars'), labs = el('div', 'barlab');
  const max = Math.max(1, ...d.gaps);
  d.gaps.forEach((n, i) => {
    const b = el('div');
    b.style.height = (100 * n / max).toFixed(1) + '%';
    b.title = `${GAP_LABELS[i]} ms: ${n}`;
    bars.appendChild(b);
    labs.appendChild(el('span', '', GAP_LABELS[i]));
  });
  box.appendChild(bars);
  box.appendChild(labs);
}

/* --- charts --- */

function lineChart(id, title, names, colors, yTitle, extra) {
  const datasets = names.map((n, i) => ({ label: n, data: [], borderColor: colors[i],
    backgroundColor: colors[i], borderWidth: 1.5, pointRadius: 0, spanGaps: false,
    stepped: extra && extra.stepped, yAxisID: extra && extra.y2 && extra.y2.includes(i) ? 'y2' : 'y' }));
  const scales = {
    x: { type: 'linear', min: -60, max: 0, title: { display: true, text: 'seconds ago' },
      ticks: { callback: (v) => (v === 0 ? 'now' : v % 60 === 0 ? (v / 60) + ' min' : v + ' s'),
        stepSize: 10, maxRotation: 0 } },
    y: { beginAtZero: true, title: { display: true, text: yTitle } },
  };
  if (extra && extra.y2) scales.y2 = { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } };
  return new Chart($(id), { type: 'line', data: { datasets },
    options: { parsing: false, normalized: true, maintainAspectRatio: false, interaction: { mode: 'nearest', intersect: false },
      plugins: { title: { display: true, text: title }, legend: { position: 'bottom' } }, scales } });
}

function makeCharts() {
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;
  charts.levels = new Chart($('chart-levels'), { type: 'bar',
    data: { labels: [], datasets: ['p50', 'p90', 'p99'].map((p, i) => ({ label: 'TTFT ' + p,
      data: [], backgroundColor: ['#3b82f6', '#f59e0b', '#ef4444'][i] })) },
    options: { maintainAspectRatio: false, plugins: { title: { display: true, text: 'TTFT by concurrency level (ms)' } },
      scales: { x: { title: { display: true, text: 'concurrency level' } }, y: { beginAtZero: true } } } });
  charts.ttft = lineChart('chart-ttft', 'TTFT per second (ms)', ['p50', 'p90', 'p99'], ['#3b82f6', '#f59e0b', '#ef4444'], 'ms');
  charts.itl = lineChart('chart-itl', 'Inter-token latency per second (ms)', ['p50', 'p90', 'p99'], ['#3b82f6', '#f59e0b', '#ef4444'], 'ms');
  charts.tps = lineChart('chart-tps', 'Tokens out per second, errors', ['token events/s', 'errors/s'], ['#1f7a35', '#d64545'], 'tokens/s', { y2: [1] });
  charts.load = lineChart('chart-load', 'Requests in flight, waiting for a slot, started', ['in flight (most)', 'waiting (most)', 'started/s'], ['#6366f1', '#f0b429', '#9ca3af'], 'requests', { stepped: true });
}

/* --- the loop --- */

function tick() {
  try {
    drawLanes();
    const t = performance.now();
    if (state.dirtyLevels) { state.dirtyLevels = false; renderLevels(); }
    if (state.dirtySeconds) { state.dirtySeconds = false; renderSeconds(); }
    if (state.dirtyTables && t - state.lastTables > 500) {
      state.dirtyTables = false;
      state.lastTables = t;
      renderSessions();
      renderRecent();
    }
  } catch (e) {
    fail('draw', e);
  }
}

function connect() {
  /* ?token=... (an admin token) goes on to the stream: EventSource sends no headers. */
  const es = new EventSource('events' + location.search);
  es.addEventListener('hello', (ev) => {
    const h = JSON.parse(ev.data);
    $('title').textContent = h.title;
    document.title = h.title + ' · dashboard';
  });
  es.addEventListener('frame', (ev) => {
    try { onFrame(JSON.parse(ev.data)); } catch (e) { fail('frame', e); }
  });
  es.addEventListener('levels', (ev) => {
    try { state.levels = JSON.parse(ev.data); state.dirtyLevels = true; } catch (e) { fail('levels', e); }
  });
  es.onopen = () => { document.body.dataset.state = 'live'; $('conn').textContent = 'live'; };
  es.onerror = () => { document.body.dataset.state = 'lost'; $('conn').textContent = 'reconnecting…'; };
}

try {
  makeCharts();
  $('series-pick').addEventListener('change', (ev) => { state.series = Number(ev.target.value); state.dirtySeconds = true; });
  window.addEventListener('resize', () => { for (const ln of state.lanes.values()) sizeCanvas(ln); });
  setInterval(tick, 100);
  setInterval(() => { state.dirtySeconds = true; }, 1000); /* the x axis moves */
  connect();
} catch (e) {
  fail('start', e);
}
