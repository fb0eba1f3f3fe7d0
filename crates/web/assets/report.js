// memlens report: draws the data embedded in the file (gzipped JSON in
// #memlens-data, unpacked with DecompressionStream): no request is made.
// Every string reaches the page through textContent or canvas fillText.
'use strict';

async function reportData() {
  const text = document.getElementById('memlens-data').textContent.trim();
  const bin = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream('gzip'));
  return JSON.parse(await new Response(stream).text());
}

function reportChart(spec, box) {
  const d = spec.data;
  const section = ml.el('div', { class: 'chart' }, ml.el('h3', {}, spec.title));
  box.append(section);
  const hook = { labels: spec.labels, samples: {}, drawn: false, points: d.t.length };
  window.memlens.charts[spec.key] = hook;
  const series = d.series.map((s, i) => { hook.samples[spec.labels[i]] = s.samples; return s.last; });
  if (!d.t.length) { section.append(ml.el('span', { class: 'nodata' }, 'no samples')); return; }
  const fmt = spec.bytes ? ml.bytes : ml.num;
  const colors = ['#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#e377c2', '#d62728'];
  const opts = {
    width: Math.max(400, box.clientWidth - 20), height: 200,
    series: [{}, ...spec.labels.map((l, i) => ({ label: l, stroke: colors[i % colors.length], value: (u, v) => fmt(v) }))],
    axes: [{}, { values: (u, vals) => vals.map(fmt), size: 70 }],
  };
  new uPlot(opts, [d.t.map((t) => t / 1000), ...series], section); // eslint-disable-line no-new
  hook.drawn = true;
}

function reportFindings(findings) {
  const list = document.getElementById('findings');
  if (!findings.length) list.append(ml.el('li', {}, 'No finding in the window.'));
  for (const f of findings) {
    const rows = (f.evidence || []).map((e) => ml.el('tr', {}, ml.el('td', {}, e.name),
      ml.el('td', {}, String(e.value) + (e.unit ? ' ' + e.unit : ''))));
    list.append(ml.el('li', {}, ml.el('span', { class: ml.severityClass(f.severity) }, f.severity + ' '),
      ml.el('b', {}, f.id), ' fired ' + ml.time(f.fired_ms) + (f.cleared_ms ? ', cleared ' + ml.time(f.cleared_ms) : ''),
      ml.el('table', {}, ...rows), ml.el('p', {}, f.recommendation || '')));
  }
  window.memlens.findings = findings.map((f) => ({ id: f.id, severity: f.severity, fired_ms: f.fired_ms }));
}

function reportFlame(key, f, diff) {
  const caption = document.getElementById(key + '-caption');
  if (!f) { caption.textContent = diff ? 'Fewer than two heap profiles kept in the window.' : 'No heap profile kept in the window.'; return; }
  const fmt = f.unit === 'bytes' ? ml.bytes : ml.num;
  caption.textContent = f.sample + ' at ' + ml.time(f.ts_ms) + (f.base ? ', growth since ' + ml.time(f.base.ts_ms) : '') + ': ' + fmt(f.tree.v);
  window.memlens.flames[key] = { id: f.id, base: f.base && f.base.id, ...memlensFlame.draw(document.getElementById(key + '-flame'), f.tree, fmt, diff) };
}

function reportGoroutines(g) {
  const caption = document.getElementById('gr-caption');
  if (!g) { caption.textContent = 'No goroutine profile kept in the window.'; return; }
  caption.textContent = g.total + ' goroutines at ' + ml.time(g.ts_ms) + ', ' + reportGrouping(g);
  const table = document.getElementById('gr-table');
  table.append(ml.el('tr', {}, ml.el('th', {}, 'goroutines'), ml.el('th', {}, 'site'), ml.el('th', {}, 'where')));
  for (const s of g.sites) {
    table.append(ml.el('tr', {}, ml.el('td', {}, String(s.count)),
      ml.el('td', {}, (s.site === 'created_by' ? 'created by ' : 'started in ') + (s.function || '(no frames)')), ml.el('td', { class: 'name' }, s.file + ':' + s.line)));
  }
  window.memlens.goroutines = { grouping: g.grouping, fallback: g.fallback, total: g.total, sites: g.sites.map((s) => ({ function: s.function, site: s.site, count: s.count })) };
}

// Which grouping an answer of /api/v1/goroutines shows, in words.
function reportGrouping(v) {
  return v.grouping === 'created_by'
    ? 'grouped by creation site (the function that ran the go statement, from the ?debug=2 dump)'
    : 'grouped by start function (' + (v.fallback || 'no ?debug=2 dump kept') + ')';
}

function reportSitesOverTime(v) {
  const caption = document.getElementById('gr-time-caption');
  if (!v || !v.t.length) { caption.textContent = 'No goroutine profile kept in the window.'; return; }
  caption.textContent = 'Over ' + v.t.length + (v.grouping === 'created_by' ? ' dumps' : ' profiles') + ' from ' +
    ml.time(v.t[0]) + ', ' + reportGrouping(v);
  const table = document.getElementById('gr-time');
  table.append(ml.el('tr', {}, ml.el('th', {}, 'site'), ml.el('th', {}, 'first'), ml.el('th', {}, 'max'), ml.el('th', {}, 'last')));
  for (const s of v.sites) {
    table.append(ml.el('tr', {}, ml.el('td', { class: 'name' }, (s.site === 'created_by' ? 'created by ' : 'started in ') +
      (s.function || '(no frames)') + ' ' + s.file + ':' + s.line), ml.el('td', {}, String(s.counts[0])),
      ml.el('td', {}, String(Math.max(...s.counts))), ml.el('td', {}, String(s.counts[s.counts.length - 1]))));
  }
  window.memlens.goroutines_over_time = { grouping: v.grouping, t: v.t, sites: v.sites.map((s) => ({ function: s.function, site: s.site, counts: s.counts })) };
}

function reportProfileLink(data) {
  const el = document.getElementById('memlens-profile');
  const caption = document.getElementById('profile-caption');
  if (!el) { caption.textContent = 'No heap profile kept in the window.'; return; }
  const bin = Uint8Array.from(atob(el.textContent.trim()), (c) => c.charCodeAt(0));
  const link = document.getElementById('profile-link');
  link.setAttribute('href', URL.createObjectURL(new Blob([bin], { type: 'application/octet-stream' })));
  link.textContent = 'heap.pb.gz (' + ml.bytes(bin.length) + ')';
  caption.textContent = 'The last kept heap profile (#' + data.embedded_profile + '), gzipped protobuf: save it and run ' +
    '`go tool pprof -top heap.pb.gz`, or `memlens report --extract THIS.html -o heap.pb.gz`.';
  window.memlens.profile_bytes = bin.length;
}

async function reportMain() {
  window.memlens.flames = {};
  const data = await reportData();
  document.title = 'memlens report: ' + data.title;
  document.getElementById('title').textContent = data.title;
  document.getElementById('subtitle').textContent = [data.entity.cmdline, data.entity.go_version && 'Go ' + data.entity.go_version]
    .filter(Boolean).join(' · ');
  document.getElementById('when').textContent = ml.time(data.from) + ' – ' + ml.time(data.to);
  reportFindings(data.findings || []);
  for (const c of data.charts) reportChart(c, document.getElementById('charts'));
  reportFlame('heap', data.heap, false);
  reportFlame('growth', data.growth, true);
  reportGoroutines(data.goroutines);
  reportSitesOverTime(data.goroutines_over_time);
  reportProfileLink(data);
  window.memlens.ready = true;
}

document.addEventListener('DOMContentLoaded', () => reportMain().catch((e) => { ml.fail(e); window.memlens.ready = true; }));
