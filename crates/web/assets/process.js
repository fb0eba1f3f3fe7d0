// The process (or cgroup) page: aligned time charts with one cursor and
// zoom, the memory at the instant as a stacked bar, findings with evidence
// marked where they fired and cleared. The URL holds the state: id, at
// (time travel), span or from/to (zoom).
'use strict';

const SPANS = [['5 min', 300e3], ['15 min', 900e3], ['1 h', 3600e3], ['6 h', 21600e3], ['24 h', 86400e3]];
const COLORS = ['#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#e377c2', '#d62728', '#8c564b', '#17becf'];

function chartSpecs(e) {
  const P = e.id;
  const C = e.cgroup_entity;
  if (e.kind === 'cgroup') {
    return [
      { key: 'memory', title: 'Memory', bytes: true, forecast: true, series: [
        [P, 'usage_bytes', 'usage'], [P, 'working_set_bytes', 'working set'], [P, 'effective_limit_bytes', 'limit']] },
      { key: 'faults', title: 'Refaults and major faults per second', series: [
        [P, 'file_refaults', 'file refaults/s'], [P, 'major_faults', 'major faults/s']] },
    ];
  }
  return [
    { key: 'memory', title: 'Memory', bytes: true, forecast: true, series: [
      [P, 'rss_bytes', 'RSS'], [C, 'working_set_bytes', 'working set (cgroup)'],
      [P, 'go_heap_inuse_bytes', 'Go heap in use'], [P, 'go_next_gc_bytes', 'heap goal'],
      [P, 'go_gomemlimit_bytes', 'GOMEMLIMIT'], [C, 'effective_limit_bytes', 'cgroup limit']] },
    { key: 'goroutines', title: 'Goroutines', series: [[P, 'go_goroutines', 'goroutines']] },
    { key: 'gc', title: 'GC cycles per second', series: [[P, 'go_gc_cycles_total', 'GC cycles/s']] },
    { key: 'gcpause', title: 'GC pause, ns per second', series: [[P, 'go_gc_pause_ns_total', 'GC pause ns/s']] },
    { key: 'faults', title: 'Page faults per second', series: [
      [P, 'minor_faults', 'minor faults/s'], [P, 'major_faults', 'major faults/s']] },
    { key: 'fds', title: 'Open FDs and VMAs', series: [[P, 'fd_count', 'open FDs'], [P, 'vma_count', 'VMAs']] },
  ].map((c) => ({ ...c, series: c.series.filter((s) => s[0] !== null && s[0] !== undefined) }));
}

(async function processPage() {
  try {
    const id = ml.intParam('id');
    if (id === null) throw new Error('no entity: open a process from the overview');
    const info = await ml.json('/api/v1/info');
    const at = Math.min(ml.intParam('at') ?? info.last_ms, info.last_ms);
    ml.setupTravel('/process', at, info.last_ms);
    const span = ml.intParam('span') ?? 900e3;
    const to = Math.min(ml.intParam('to') ?? at, at);
    // Without a zoom, the span ends at the instant and starts no earlier than the history.
    const from = Math.min(ml.intParam('from') ?? Math.max(at - span, info.first_ms), to - 1000);
    const entity = await ml.json('/api/v1/entity?id=' + id + '&at=' + at);
    document.getElementById('home-link').setAttribute('href', '/?at=' + at);
    document.getElementById('profiles-link').setAttribute('href', '/profiles?id=' + id + '&at=' + at);
    const name = entity.kind === 'process' ? (entity.comm || '?') + ' (pid ' + entity.pid + ')' : entity.cgroup;
    document.title = 'memlens: ' + name;
    document.getElementById('title').textContent = name;
    document.getElementById('subtitle').textContent = [entity.cmdline, entity.go_version && 'Go ' + entity.go_version,
      entity.kind === 'process' && entity.cgroup && 'cgroup ' + entity.cgroup].filter(Boolean).join(' · ');
    spanButtons();
    drawBar(entity);
    const width = Math.max(300, Math.min(1240, document.querySelector('main').clientWidth - 20));
    const findingsP = ml.json('/api/v1/findings?entity=' + id + '&from=' + from + '&to=' + to + '&at=' + at);
    const specs = chartSpecs(entity);
    const dataP = specs.map((c) => ml.json('/api/v1/series?from=' + from + '&to=' + to + '&at=' + at + '&width=' + width +
      c.series.map((s) => '&s=' + s[0] + ':' + encodeURIComponent(s[1])).join('')));
    const findings = (await findingsP).findings;
    listFindings(findings, at, entity.kind === 'process' ? id : null);
    const markers = findings.flatMap((f) => [
      { id: f.id, severity: f.severity, kind: 'fired', ms: f.fired_ms },
      ...(f.cleared_ms === null ? [] : [{ id: f.id, severity: f.severity, kind: 'cleared', ms: f.cleared_ms }])]);
    window.memlens.markers = markers.map((m) => ({ ...m, in_range: m.ms >= from && m.ms <= to }));
    const forecast = findings.find((f) => f.active && f.forecast);
    const plots = [];
    const datas = await Promise.all(dataP);
    // One x range for every chart (aligned), stretched to show an active
    // forecast's predicted kill (at most one more span).
    const f = forecast ? forecast.forecast : null;
    const ends = f ? [f.kill_ms, f.earliest_ms, f.latest_ms].filter((x) => x) : [];
    const xmax = Math.min(Math.max(to, ...ends), to + (to - from));
    specs.forEach((spec, i) => plots.push(chart(spec, datas[i], { from, to, xmax, width, markers, forecast: spec.forecast ? forecast : null, at })));
    window.memlens.range = { from, to, at };
    window.memlens.readyMs = performance.now(); // since navigation start
    window.memlens.ready = true;
  } catch (err) {
    ml.fail(err);
  }
})();

function spanButtons() {
  const nav = document.getElementById('spans');
  nav.append('span: ');
  for (const [label, ms] of SPANS) {
    const a = ml.el('a', { href: ml.url('/process', { span: ms, from: null, to: null }) }, label);
    nav.append(a, ' ');
  }
  nav.append(' · drag across a chart to zoom');
}

// One chart: min and max per column (a band), findings as vertical lines.
function chart(spec, data, ctx) {
  const box = ml.el('div', { class: 'chart', 'data-chart': spec.key }, ml.el('h3', {}, spec.title));
  document.getElementById('charts').append(box);
  let t = data.t.slice();
  const labels = spec.series.map((s) => s[2]);
  // GOMEMLIMIT's "no limit" is math.MaxInt64: no line rather than a scale of exabytes.
  const noLimit = (v, i) => (labels[i] === 'GOMEMLIMIT' && v !== null && v >= 2 ** 62 ? null : v);
  const cols = data.series.map((s, i) => ({
    min: s.min.map((v) => noLimit(v, i)), max: s.max.map((v) => noLimit(v, i)), last: s.last.map((v) => noLimit(v, i)) }));
  const hook = { labels, t: data.t, values: {}, samples: {}, drawn: false, markers_drawn: [], x_range: [ctx.from, ctx.xmax] };
  cols.forEach((c, i) => { hook.values[labels[i]] = c.last; hook.samples[labels[i]] = data.series[i].samples; });
  const empty = data.series.every((s) => s.samples === 0);
  if (empty) box.append(ml.el('span', { class: 'nodata' }, 'no samples in this range'));
  const series = [{}];
  const plotted = [t];
  // Gauges: the max of each column and, thin, its min (the envelope);
  // rates: the column's mean and, thin, its max.
  const minor = [];
  cols.forEach((c, i) => {
    const color = COLORS[i % COLORS.length];
    const rate = data.series[i].rate;
    series.push({ label: labels[i], stroke: color, width: 1.5, spanGaps: true, value: (u, v) => fmt(spec, v) });
    series.push({ label: labels[i] + (rate ? ' (max)' : ' (min)'), stroke: color, width: 0.5, spanGaps: true, value: (u, v) => fmt(spec, v) });
    minor.push(series.length - 1);
    plotted.push(rate ? c.last : c.max, rate ? c.max : c.min);
  });
  const xmax = ctx.xmax;
  if (ctx.forecast && ctx.forecast.forecast) {
    const f = ctx.forecast.forecast;
    const idx = (re) => labels.findIndex((l) => re.test(l));
    const li = idx(/limit$/);
    const wi = idx(/^working set/);
    const lim = li >= 0 ? lastOf(cols[li].last) : null;
    const now = (wi >= 0 ? lastOf(cols[wi].last) : null) ?? lastOf(cols[0].last);
    if (lim !== null && now !== null) {
      const points = [['forecast', f.kill_ms], ['earliest kill', f.earliest_ms], ['latest kill', f.latest_ms]].filter((p) => p[1]);
      const extraT = [ctx.at, ...points.map((p) => p[1])].filter((x) => !t.includes(x));
      const allT = [...t, ...extraT].sort((a, b) => a - b);
      const remap = (arr) => allT.map((x) => { const j = t.indexOf(x); return j >= 0 ? arr[j] : null; });
      for (let k = 1; k < plotted.length; k++) plotted[k] = remap(plotted[k]);
      for (const [label, killMs] of points) {
        series.push({ label, stroke: '#d62728', dash: label === 'forecast' ? [6, 4] : [2, 4], width: 1.5, spanGaps: true, value: (u, v) => fmt(spec, v) });
        plotted.push(allT.map((x) => (x === ctx.at ? now : x === killMs ? lim : null)));
      }
      t = allT;
      plotted[0] = allT;
      hook.forecast = { kill_ms: f.kill_ms, earliest_ms: f.earliest_ms, latest_ms: f.latest_ms, from_value: now, to_value: lim };
    }
  }
  const opts = {
    width: ctx.width, height: spec.key === 'memory' ? 260 : 150, ms: 1,
    scales: { x: { time: true, range: () => [ctx.from, xmax] } },
    series,
    axes: [{}, { size: 70, values: (u, splits) => splits.map((v) => fmt(spec, v)) }],
    cursor: { sync: { key: 'memlens', setSeries: false }, drag: { x: true, y: false } },
    hooks: {
      draw: [(u) => drawMarkers(u, ctx.markers, hook)],
      setCursor: [(u) => {
        if (spec.key !== 'memory' || u.cursor.idx === null || u.cursor.idx === undefined) return;
        barAt(Math.min(u.data[0][u.cursor.idx], ctx.at));
      }],
      setSelect: [(u) => {
        if (u.select.width < 5) return;
        const a = Math.round(u.posToVal(u.select.left, 'x'));
        const b = Math.round(u.posToVal(u.select.left + u.select.width, 'x'));
        location.assign(ml.url('/process', { from: a, to: Math.min(b, ctx.at) }));
      }],
    },
  };
  const u = new uPlot(opts, plotted, box);
  // The envelope's second line needs no legend row.
  u.root.querySelectorAll('.u-legend tr.u-series').forEach((tr, i) => {
    if (minor.includes(i)) tr.classList.add('minor');
  });
  hook.drawn = true;
  window.memlens.charts[spec.key] = hook;
  return hook;
}

// The stacked bar follows the cursor (debounced: one entity request per pause).
let barTimer = null;
let barShown = null;
function barAt(ms) {
  if (ms === barShown) return;
  clearTimeout(barTimer);
  barTimer = setTimeout(async () => {
    barShown = ms;
    try {
      drawBar(await ml.json('/api/v1/entity?id=' + ml.intParam('id') + '&at=' + ms));
    } catch (err) {
      ml.fail(err);
    }
  }, 150);
}

function lastOf(arr) {
  for (let i = arr.length - 1; i >= 0; i--) if (arr[i] !== null) return arr[i];
  return null;
}

function fmt(spec, v) {
  if (v === null || v === undefined) return '–';
  return spec.bytes ? ml.bytes(v) : ml.num(v);
}

function drawMarkers(u, markers, hook) {
  const c = u.ctx;
  const { left, top, width, height } = u.bbox;
  hook.markers_drawn = [];
  c.save();
  for (const m of markers) {
    const x = Math.round(u.valToPos(m.ms, 'x', true));
    if (x < left || x > left + width) continue;
    c.strokeStyle = m.kind === 'cleared' ? '#2ca02c' : m.severity === 'critical' ? '#d62728' : '#ff7f0e';
    c.lineWidth = 2;
    c.setLineDash(m.kind === 'cleared' ? [4, 3] : []);
    c.beginPath();
    c.moveTo(x, top);
    c.lineTo(x, top + height);
    c.stroke();
    hook.markers_drawn.push({ id: m.id, kind: m.kind, ms: m.ms, x });
  }
  c.restore();
}

// Where the memory is at the instant: Go heap in use / idle / stacks /
// runtime metadata / outside the runtime / page cache, against the limit
// and GOMEMLIMIT.
function drawBar(e) {
  const v = (m) => (e.values[m] ? e.values[m].value : null);
  const cg = (m) => (e.cgroup_values && e.cgroup_values[m] ? e.cgroup_values[m].value : null);
  const pos = (x) => (x === null || !isFinite(x) ? 0 : Math.max(0, x));
  const rss = pos(v('rss_bytes') ?? v('usage_bytes'));
  const goSys = v('go_sys_bytes');
  const released = pos(v('go_heap_released_bytes'));
  const segs = [];
  if (goSys !== null) {
    const heap = pos(v('go_heap_inuse_bytes'));
    const idle = pos(v('go_heap_idle_bytes') - released);
    const stacks = pos(v('go_stack_inuse_bytes'));
    const meta = pos(goSys - pos(v('go_heap_sys_bytes')) - stacks);
    segs.push(['Go heap in use', heap], ['Go heap idle, not returned', idle], ['goroutine stacks', stacks],
      ['runtime metadata', meta], ['outside the Go runtime', pos(rss - (goSys - released))]);
  } else {
    segs.push(['resident (no Go runtime data)', rss]);
  }
  const file = e.kind === 'cgroup' ? pos(v('active_file_bytes')) + pos(v('inactive_file_bytes'))
    : pos(cg('active_file_bytes')) + pos(cg('inactive_file_bytes'));
  segs.push(['page cache (cgroup)', file]);
  const limit = e.kind === 'cgroup' ? v('effective_limit_bytes') : cg('effective_limit_bytes');
  const gomemlimit = v('go_gomemlimit_bytes');
  const total = segs.reduce((a, s) => a + s[1], 0);
  const scale = Math.max(total, limit && isFinite(limit) ? limit : 0, gomemlimit && gomemlimit < 1e18 ? gomemlimit : 0) * 1.05 || 1;
  const bar = document.getElementById('bar');
  const legend = document.getElementById('bar-legend');
  bar.replaceChildren();
  legend.replaceChildren();
  document.getElementById('bar-title').textContent = 'Where the memory is at ' + ml.time(e.at);
  segs.forEach(([label, bytes], i) => {
    const seg = ml.el('div', { class: 'seg', title: label + ': ' + ml.bytes(bytes) });
    seg.style.width = (100 * bytes / scale).toFixed(2) + '%';
    seg.style.background = COLORS[i % COLORS.length];
    bar.append(seg);
    const sw = ml.el('span', { class: 'swatch' });
    sw.style.background = COLORS[i % COLORS.length];
    legend.append(ml.el('li', {}, sw, label + ': ' + ml.bytes(bytes)));
  });
  for (const [cls, label, x] of [['limit', 'cgroup limit', limit], ['gomemlimit', 'GOMEMLIMIT', gomemlimit]]) {
    if (x === null || !isFinite(x) || x <= 0 || x > scale) continue;
    const m = ml.el('div', { class: 'mark ' + cls, title: label + ': ' + ml.bytes(x) });
    m.style.left = (100 * x / scale).toFixed(2) + '%';
    bar.append(m);
    legend.append(ml.el('li', {}, '| ' + label + ': ' + ml.bytes(x)));
  }
  window.memlens.bar = { at: e.at, segments: segs.map(([label, bytes]) => ({ label, bytes })) };
}

// `process`: the page's process id, for each finding's link to the profiles
// the agent had kept of it by the time the finding fired (null: a cgroup).
function listFindings(findings, at, process) {
  const ul = document.getElementById('findings');
  if (findings.length === 0) ul.append(ml.el('li', {}, 'no finding in this range'));
  for (const f of findings) {
    const table = ml.el('table');
    for (const ev of f.evidence || []) {
      const value = ev.unit === 'bytes' ? ml.bytes(ev.value) : /_at_ms$/.test(ev.name) ? ml.time(ev.value)
        : ml.num(ev.value) + (ev.unit ? ' ' + ev.unit : '');
      table.append(ml.el('tr', {}, ml.el('td', {}, ev.name), ml.el('td', {}, value), ml.el('td', {}, ev.layer || '')));
    }
    const state = f.active ? 'active since ' + ml.time(f.fired_ms) : 'fired ' + ml.time(f.fired_ms) + ', cleared ' + ml.time(f.cleared_ms);
    const li = ml.el('li', { 'data-finding': f.id },
      ml.el('strong', { class: ml.severityClass(f.severity) }, f.severity + ' '), ml.el('strong', {}, f.id),
      ' on ' + f.target + ' — ' + state,
      f.forecast ? ml.el('div', {}, 'predicted kill ' + ml.time(f.forecast.kill_ms) +
        (f.forecast.earliest_ms ? ', range ' + ml.time(f.forecast.earliest_ms) + ' to ' + (f.forecast.latest_ms ? ml.time(f.forecast.latest_ms) : 'later') : '')) : null,
      table, ml.el('div', {}, f.recommendation),
      process === null ? null : ml.el('a', { class: 'profiles-link', href: '/profiles?id=' + process + '&at=' + f.fired_ms },
        'heap and goroutine profiles kept by then'));
    ul.append(li);
  }
  window.memlens.findings = findings.map((f) => ({ id: f.id, severity: f.severity, fired_ms: f.fired_ms, cleared_ms: f.cleared_ms, active: f.active }));
}
