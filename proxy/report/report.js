/* tokentap report charts. Embedded into the binary at build time and
 * inlined into report.html after Chart.js 3.9; draws from the JSON in
 * <script id="report-data">. Every exception lands in <pre id="errors">;
 * when all charts were created without one, <body data-charts="ok">
 * (the browser test reads it with --dump-dom). Charts are drawn without
 * animation so that a screenshot or a print shows them at once. */
(function () {
  'use strict';
  var errorsEl = document.getElementById('errors');
  var failed = false;

  function fail(what, e) {
    failed = true;
    document.body.setAttribute('data-charts', 'error');
    if (errorsEl) {
      errorsEl.hidden = false;
      errorsEl.textContent += what + ': ' + ((e && e.stack) || e) + '\n';
    }
  }
  window.addEventListener('error', function (ev) { fail('error', ev.error || ev.message); });

  var PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b',
                 '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79'];
  var PASS = '#2e9d4a', FAIL = '#d62728', NOCHECK = '#9e9e9e', WAIT = '#d9d9d9';

  function color(i, alpha) {
    var hex = PALETTE[i % PALETTE.length];
    if (alpha === undefined) return hex;
    var n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ',' + ((n >> 8) & 255) + ',' + (n & 255) + ',' + alpha + ')';
  }

  function fmt(v, digits) {
    return v === null || v === undefined ? '—' : v.toFixed(digits);
  }

  /* Vertical error bars from dataset.ci[i] = [lo, hi] (null: none). */
  var errorBars = {
    id: 'errorBars',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.ci || !chart.isDatasetVisible(i)) return;
        var meta = chart.getDatasetMeta(i);
        var y = chart.scales[meta.yAxisID];
        ctx.save();
        ctx.strokeStyle = ds.errorColor || '#333';
        ctx.lineWidth = 1.5;
        meta.data.forEach(function (el, j) {
          var ci = ds.ci[j];
          if (!ci || ci[0] === null || ci[1] === null) return;
          var top = y.getPixelForValue(ci[1]), bottom = y.getPixelForValue(ci[0]);
          ctx.beginPath();
          ctx.moveTo(el.x, top); ctx.lineTo(el.x, bottom);
          ctx.moveTo(el.x - 5, top); ctx.lineTo(el.x + 5, top);
          ctx.moveTo(el.x - 5, bottom); ctx.lineTo(el.x + 5, bottom);
          ctx.stroke();
        });
        ctx.restore();
      });
    }
  };

  /* Text above each bar from dataset.texts[i] (side tasks: "PASS 5/5"). */
  var barTexts = {
    id: 'barTexts',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.texts) return;
        var meta = chart.getDatasetMeta(i);
        var y = chart.scales[meta.yAxisID];
        ctx.save();
        ctx.font = 'bold 12px system-ui, sans-serif';
        ctx.textAlign = 'center';
        ctx.fillStyle = '#222';
        meta.data.forEach(function (el, j) {
          if (!ds.texts[j]) return;
          var top = el.y;
          if (ds.ci && ds.ci[j]) top = Math.min(top, y.getPixelForValue(ds.ci[j][1]));
          ctx.fillText(ds.texts[j], el.x, top - 6);
        });
        ctx.restore();
      });
    }
  };

  /* Token arrivals as tick marks across each timeline lane. The lanes come
   * through a closure, not the chart's options, which Chart.js would wrap
   * in resolver proxies tick by tick. */
  function tokenTicks(lanes) {
    return {
      id: 'tokenTicks',
      afterDatasetsDraw: function (chart) {
        var ctx = chart.ctx, x = chart.scales.x, y = chart.scales.y;
        var h = Math.max(6, Math.min(16, (y.height / Math.max(1, lanes.length)) * 0.6));
        ctx.save();
        ctx.strokeStyle = 'rgba(0,0,0,0.55)';
        ctx.lineWidth = 1;
        lanes.forEach(function (lane, i) {
          var cy = y.getPixelForValue(i);
          ctx.beginPath();
          lane.ticks.forEach(function (t) {
            var px = x.getPixelForValue(t);
            ctx.moveTo(px, cy - h / 2); ctx.lineTo(px, cy + h / 2);
          });
          ctx.stroke();
        });
        ctx.restore();
      }
    };
  }

  function make(id, config) {
    var el = document.getElementById(id);
    if (!el) return;
    try {
      new Chart(el, config);
    } catch (e) {
      fail(id, e);
    }
  }

  function ciTooltip(unit, digits) {
    return function (ctx) {
      var ds = ctx.dataset, ci = ds.ci && ds.ci[ctx.dataIndex];
      var s = ds.label + ': ' + fmt(ctx.parsed.y, digits) + ' ' + unit;
      if (ci) s += ' (95% CI ' + fmt(ci[0], digits) + '–' + fmt(ci[1], digits) + ')';
      return s;
    };
  }

  function axisTitle(text) {
    return { display: true, text: text };
  }

  function lineChart(id, data, key, unit, digits, title) {
    make(id, {
      type: 'line',
      data: {
        labels: data.levels,
        datasets: data.sides.map(function (s, i) {
          return {
            label: s.label,
            data: s[key].map(function (p) { return p ? p.m : null; }),
            ci: s[key].map(function (p) { return p && p.lo !== null ? [p.lo, p.hi] : null; }),
            borderColor: color(i), backgroundColor: color(i), errorColor: color(i),
            pointRadius: 4, spanGaps: true, tension: 0
          };
        })
      },
      options: {
        scales: {
          /* offset: the outer points and their error bars off the frame */
          x: { offset: true, title: axisTitle(data.level_axis) },
          y: { beginAtZero: true, title: axisTitle(title) }
        },
        plugins: { tooltip: { callbacks: { label: ciTooltip(unit, digits) } } }
      },
      plugins: [errorBars]
    });
  }

  function radar(data) {
    if (!data.radar) return;
    make('chart-radar', {
      type: 'radar',
      data: {
        labels: data.radar.axes,
        datasets: data.sides.map(function (s, i) {
          return {
            label: s.label, data: data.radar.values[i],
            borderColor: color(i), backgroundColor: color(i, 0.15), pointBackgroundColor: color(i)
          };
        })
      },
      options: {
        scales: {
          r: {
            min: 0, max: 100,
            /* 100 would sit on the top axis's name. */
            ticks: {
              stepSize: 20, backdropColor: 'rgba(0,0,0,0)',
              callback: function (v) { return v === 100 ? '' : v; }
            },
            pointLabels: { font: { size: 13 } }
          }
        }
      }
    });
  }

  function throughput(data) {
    var sets = [];
    data.sides.forEach(function (s, i) {
      sets.push({
        type: 'bar', label: s.label + ' — all agents',
        data: s.out_tps.map(function (p) { return p ? p.m : null; }),
        ci: s.out_tps.map(function (p) { return p && p.lo !== null ? [p.lo, p.hi] : null; }),
        backgroundColor: color(i, 0.7), borderColor: color(i), borderWidth: 1, order: 2
      });
    });
    data.sides.forEach(function (s, i) {
      sets.push({
        type: 'line', label: s.label + ' — per slot (primary)',
        data: s.slot_tps.map(function (p) { return p ? p.m : null; }),
        borderColor: color(i), backgroundColor: '#fff', borderDash: [6, 4],
        pointStyle: 'rectRot', pointRadius: 5, spanGaps: true, order: 1
      });
    });
    make('chart-throughput', {
      type: 'bar',
      data: { labels: data.levels, datasets: sets },
      options: {
        scales: {
          x: { title: axisTitle(data.level_axis) },
          y: { beginAtZero: true, title: axisTitle('tokens/s') }
        },
        plugins: { tooltip: { callbacks: { label: ciTooltip('tok/s', 1) } } }
      },
      plugins: [errorBars]
    });
  }

  /* TTFT = slot wait + prefill, stacked, one stack per side. */
  function ttftSplit(data) {
    if (!document.getElementById('chart-ttft-split')) return;
    var sets = [];
    data.sides.forEach(function (s, i) {
      sets.push({
        label: s.label + ' — slot wait', stack: 's' + i,
        data: s.slot_wait.map(function (p) { return p ? p.m : null; }),
        backgroundColor: color(i, 0.35), borderColor: color(i), borderWidth: 1
      });
      sets.push({
        label: s.label + ' — prefill', stack: 's' + i,
        data: s.prefill.map(function (p) { return p ? p.m : null; }),
        backgroundColor: color(i, 0.85), borderColor: color(i), borderWidth: 1
      });
    });
    make('chart-ttft-split', {
      type: 'bar',
      data: { labels: data.levels, datasets: sets },
      options: {
        scales: {
          x: { stacked: true, title: axisTitle(data.level_axis) },
          y: { stacked: true, beginAtZero: true, title: axisTitle('ms (p50)') }
        },
        plugins: { tooltip: { callbacks: { label: function (ctx) {
          return ctx.dataset.label + ': ' + fmt(ctx.raw, 1) + ' ms';
        } } } }
      }
    });
  }

  function sideTasks(data) {
    var st = data.side_tasks;
    if (!st) return;
    var fill = st.bars.map(function (b) {
      return b.verdict === 'pass' ? PASS : b.verdict === 'fail' ? FAIL : NOCHECK;
    });
    make('chart-sidetasks', {
      type: 'bar',
      data: {
        labels: st.bars.map(function (b) { return [b.task, b.side_label]; }),
        datasets: [{
          label: 'mean time (s)',
          data: st.bars.map(function (b) { return b.m; }),
          ci: st.bars.map(function (b) { return b.lo !== null ? [b.lo, b.hi] : null; }),
          texts: st.bars.map(function (b) { return b.text; }),
          backgroundColor: fill,
          borderColor: st.bars.map(function (b) { return color(b.side); }),
          borderWidth: 3
        }]
      },
      options: {
        layout: { padding: { top: 24 } },
        scales: { y: { beginAtZero: true, grace: '12%', title: axisTitle('seconds') } },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: ciTooltip('s', 2) } }
        }
      },
      plugins: [errorBars, barTexts]
    });
  }

  function timeline(data) {
    var tl = data.timeline;
    if (!tl) return;
    var lanes = tl.lanes;
    make('chart-timeline', {
      type: 'bar',
      data: {
        labels: lanes.map(function (l) { return l.label; }),
        datasets: [{
          label: 'waiting (sent → first token)',
          data: lanes.map(function (l) { return [l.start, l.first !== null ? l.first : l.end]; }),
          backgroundColor: lanes.map(function (l) { return l.error ? FAIL : WAIT; }),
          grouped: false, barPercentage: 0.7, categoryPercentage: 1
        }, {
          label: 'generating (first token → end)',
          data: lanes.map(function (l) { return l.first !== null ? [l.first, l.end] : null; }),
          backgroundColor: lanes.map(function (l) { return color(l.side, 0.45); }),
          borderColor: lanes.map(function (l) { return color(l.side); }),
          borderWidth: 1, grouped: false, barPercentage: 0.7, categoryPercentage: 1
        }]
      },
      options: {
        indexAxis: 'y',
        scales: {
          x: { type: 'linear', min: 0, title: axisTitle('seconds since the repetition started') },
          y: { ticks: { autoSkip: false } }
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var l = lanes[ctx.dataIndex];
                return ctx.dataset.label + ': ' + fmt(ctx.raw[0], 2) + '–' + fmt(ctx.raw[1], 2) +
                  ' s, ' + l.tokens + ' tokens';
              }
            }
          }
        }
      },
      plugins: [tokenTicks(lanes)]
    });
  }

  /* One chart per objective: its value at each count of users tried, per
   * side, and the limit as a dashed line across. Shares are drawn in %. */
  function capacityCharts(data) {
    var cap = data.capacity;
    if (!cap) return;
    cap.objectives.forEach(function (o, i) {
      var share = o.unit === 'share', k = share ? 100 : 1;
      var xs = [];
      cap.sides.forEach(function (s) { s.points.forEach(function (p) { xs.push(p.x); }); });
      var lo = Math.min.apply(null, xs.concat([1])), hi = Math.max.apply(null, xs.concat([1]));
      var sets = cap.sides.map(function (s, j) {
        return {
          label: s.label + (s.capacity !== null ? ' (holds ' + s.capacity + ')' : ''),
          data: s.points.map(function (p) {
            return { x: p.x, y: p.v[i].m === null ? null : p.v[i].m * k };
          }),
          ci: s.points.map(function (p) {
            var v = p.v[i];
            return v.lo !== null && v.hi !== null ? [v.lo * k, v.hi * k] : null;
          }),
          borderColor: color(j), errorColor: color(j),
          pointBackgroundColor: s.points.map(function (p) {
            return p.v[i].pass ? color(j) : '#fff';
          }),
          pointRadius: 5, tension: 0, showLine: true
        };
      });
      sets.push({
        label: 'limit: ' + o.text,
        data: [{ x: lo, y: o.limit * k }, { x: hi, y: o.limit * k }],
        borderColor: FAIL, backgroundColor: '#fff', borderDash: [6, 4], pointRadius: 0,
        borderWidth: 2, showLine: true
      });
      var unit = share ? '%' : o.unit;
      make('chart-capacity-' + i, {
        type: 'scatter',
        data: { datasets: sets },
        options: {
          scales: {
            x: { type: 'linear', title: axisTitle(cap.unit + ' at once'), ticks: { precision: 0 } },
            y: { beginAtZero: true, grace: '10%',
                 title: axisTitle(o.text + (unit ? ' (' + unit + ')' : '')) }
          },
          plugins: { tooltip: { callbacks: { label: function (ctx) {
            return ctx.dataset.label + ': ' + fmt(ctx.parsed.y, 1) + ' ' + unit + ' at ' + ctx.parsed.x;
          } } } }
        },
        plugins: [errorBars]
      });
    });
  }

  try {
    var data = JSON.parse(document.getElementById('report-data').textContent);
    Chart.defaults.animation = false;
    Chart.defaults.responsive = true;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.size = 13;
    radar(data);
    lineChart('chart-ttft', data, 'ttft', 'ms', 0, 'primary turn 1 TTFT (ms)');
    lineChart('chart-total', data, 'total', 's', 2, 'primary total time (s)');
    throughput(data);
    ttftSplit(data);
    sideTasks(data);
    timeline(data);
    capacityCharts(data);
  } catch (e) {
    fail('charts', e);
  }
  if (!failed) document.body.setAttribute('data-charts', 'ok');
})();
