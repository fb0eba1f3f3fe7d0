// memlens dashboard: the profiles page (/profiles?id=ENTITY[&at=MS][&p=ID]
// [&base=ID][&g=ID]): a flame graph of a kept heap profile, or the growth
// from an older one (base), and the goroutines of a kept goroutine profile
// by creation site (from the ?debug=2 dump kept with it; by start function
// when none was kept: the caption says which). The URL holds the choice.
'use strict';

function fillPick(select, profiles, chosen, withNone) {
  select.replaceChildren();
  if (withNone) select.append(ml.el('option', { value: '' }, '(none: one profile)'));
  for (const p of profiles) {
    const o = ml.el('option', { value: String(p.id) }, ml.time(p.ts_ms) + ' (#' + p.id + ', ' + ml.bytes(p.size_bytes) + ')');
    if (p.id === chosen) o.selected = true;
    select.append(o);
  }
}

function unitFmt(unit) {
  return unit === 'bytes' ? ml.bytes : ml.num;
}

async function showHeap(heaps) {
  const box = document.getElementById('heap-flame');
  const caption = document.getElementById('heap-caption');
  const p = ml.intParam('p') ?? (heaps.length ? heaps[heaps.length - 1].id : null);
  const base = ml.intParam('base');
  fillPick(document.getElementById('heap-pick'), heaps, p, false);
  fillPick(document.getElementById('heap-base'), heaps, base, true);
  if (p === null) { caption.textContent = 'No heap profile kept by this instant.'; return; }
  const f = await ml.json('/api/v1/flame?id=' + p + (base !== null ? '&base=' + base : ''));
  const fmt = unitFmt(f.unit);
  caption.textContent = f.sample + ' at ' + ml.time(f.ts_ms) + (f.base ? ': growth since ' + ml.time(f.base.ts_ms) : '') +
    ', ' + fmt(f.tree.v) + (f.base ? ' grown' : ' in all');
  window.memlens.flames.heap = { id: f.id, base: f.base && f.base.id, sample: f.sample, ...memlensFlame.draw(box, f.tree, fmt, !!f.base) };
}

async function showGoroutines(profiles) {
  const g = ml.intParam('g') ?? (profiles.length ? profiles[profiles.length - 1].id : null);
  fillPick(document.getElementById('gr-pick'), profiles, g, false);
  const caption = document.getElementById('gr-caption');
  if (g === null) { caption.textContent = 'No goroutine profile kept by this instant.'; return; }
  const [groups, f] = await Promise.all([ml.json('/api/v1/goroutines?id=' + g), ml.json('/api/v1/flame?id=' + g)]);
  caption.textContent = groups.total + ' goroutines at ' + ml.time(groups.ts_ms) +
    (groups.other_goroutines ? ' (' + groups.other_goroutines + ' in smaller groups not listed)' : '') + ', ' + groupingText(groups);
  const table = document.getElementById('gr-table');
  table.replaceChildren(ml.el('tr', {}, ml.el('th', {}, 'goroutines'), ml.el('th', {}, 'site'),
    ml.el('th', {}, 'where'), ml.el('th', {}, 'stacks'), ml.el('th', {}, 'states'), ml.el('th', {}, 'most wait in')));
  for (const s of groups.sites) {
    const states = Object.entries(s.states).map(([k, v]) => k + ' ' + v).join(', ');
    table.append(ml.el('tr', {}, ml.el('td', {}, String(s.count)),
      ml.el('td', {}, (s.site === 'created_by' ? 'created by ' : 'started in ') + (s.function || '(no frames)')),
      ml.el('td', { class: 'name' }, s.file + ':' + s.line), ml.el('td', {}, String(s.stacks)),
      ml.el('td', {}, states), ml.el('td', {}, s.leaf)));
  }
  window.memlens.goroutines = { id: g, grouping: groups.grouping, dump_id: groups.dump_id, fallback: groups.fallback, total: groups.total, sites: groups.sites.map((s) => ({ function: s.function, file: s.file, line: s.line, site: s.site, count: s.count })) };
  window.memlens.flames.goroutine = { id: g, ...memlensFlame.draw(document.getElementById('gr-flame'), f.tree, ml.num, false) };
}

// Which grouping an answer of /api/v1/goroutines shows, in words.
function groupingText(v) {
  return v.grouping === 'created_by'
    ? 'grouped by creation site (the function that ran the go statement, from the ?debug=2 dump)'
    : 'grouped by start function (' + (v.fallback || 'no ?debug=2 dump kept') + ')';
}

// A small line of `counts` on a canvas (no library: one path).
function sparkline(counts) {
  const c = document.createElement('canvas');
  c.width = 160;
  c.height = 24;
  const g = c.getContext('2d');
  const max = Math.max(1, ...counts);
  g.strokeStyle = '#d62728';
  g.beginPath();
  counts.forEach((v, i) => {
    const x = counts.length > 1 ? (i * (c.width - 2)) / (counts.length - 1) + 1 : c.width / 2;
    const y = c.height - 2 - (v / max) * (c.height - 4);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  return c;
}

async function showSitesOverTime(entity, at) {
  const v = await ml.json('/api/v1/goroutines?entity=' + entity + (at !== null ? '&at=' + at : ''));
  document.getElementById('gr-time-caption').textContent = v.t.length ? groupingText(v) : '';
  const table = document.getElementById('gr-time');
  table.replaceChildren(ml.el('tr', {}, ml.el('th', {}, 'site'), ml.el('th', {}, 'first'), ml.el('th', {}, 'last'),
    ml.el('th', {}, 'over ' + v.t.length + (v.grouping === 'created_by' ? ' dumps' : ' profiles') + (v.t.length ? ' from ' + ml.time(v.t[0]) : ''))));
  for (const s of v.sites) {
    table.append(ml.el('tr', {}, ml.el('td', { class: 'name' }, (s.site === 'created_by' ? 'created by ' : 'started in ') + (s.function || '(no frames)') + ' ' + s.file + ':' + s.line),
      ml.el('td', {}, String(s.counts[0])), ml.el('td', {}, String(s.counts[s.counts.length - 1])),
      ml.el('td', {}, sparkline(s.counts))));
  }
  window.memlens.goroutines_over_time = { grouping: v.grouping, fallback: v.fallback, t: v.t, total: v.total, sites: v.sites.map((s) => ({ function: s.function, site: s.site, counts: s.counts })) };
}

function pickForms() {
  document.getElementById('heap-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const base = document.getElementById('heap-base').value;
    location.assign(ml.url('/profiles', { p: document.getElementById('heap-pick').value, base: base || null }));
  });
  document.getElementById('gr-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.assign(ml.url('/profiles', { g: document.getElementById('gr-pick').value }));
  });
}

async function main() {
  window.memlens.flames = {};
  const id = ml.intParam('id');
  if (id === null) throw new Error('no entity: /profiles?id=ENTITY');
  const at = ml.intParam('at');
  document.getElementById('process-link').setAttribute('href', ml.url('/process', { p: null, base: null, g: null }));
  document.getElementById('home-link').setAttribute('href', at === null ? '/' : '/?at=' + at);
  const list = await ml.json('/api/v1/profiles?entity=' + id + (at !== null ? '&at=' + at : ''));
  window.memlens.profiles = list.profiles;
  document.getElementById('when').textContent = at === null ? 'latest' : 'time travel: ' + ml.time(at);
  pickForms();
  for (const job of [showHeap(list.profiles.filter((p) => p.kind === 'heap')),
    showGoroutines(list.profiles.filter((p) => p.kind === 'goroutine')), showSitesOverTime(id, at)]) {
    await job.catch(ml.fail);
  }
  window.memlens.ready = true;
}

document.addEventListener('DOMContentLoaded', () => main().catch((e) => { ml.fail(e); window.memlens.ready = true; }));
