// memlens dashboard: helpers shared by the pages. Every string from the
// history reaches the page through textContent (el() below), never as HTML.
'use strict';

// The test hook (documented in docs/api.md): what the pages plotted.
// charts[key] = { labels, t, values: {label: [last per column]}, samples,
// drawn, markers_drawn }; valueAt(key, label, ms) = the value plotted in the
// column holding ms (the latest sample of that column).
window.memlens = {
  ready: false, errors: [], charts: {}, markers: [], at: null,
  valueAt(key, label, ms) {
    const c = window.memlens.charts[key];
    if (!c || !c.values[label]) return null;
    let i = -1;
    for (let j = 0; j < c.t.length && c.t[j] <= ms; j++) i = j;
    return i < 0 ? null : c.values[label][i];
  },
};

const ml = {
  // An element with attributes and children (strings become text nodes).
  el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  },

  params() { return new URLSearchParams(location.search); },

  intParam(name) {
    const v = ml.params().get(name);
    if (v === null || v === '' || !/^-?\d+$/.test(v)) return null;
    return Number(v);
  },

  async json(url) {
    const r = await fetch(url, { credentials: 'same-origin' });
    const body = await r.json().catch(() => ({ error: 'not JSON' }));
    if (!r.ok) throw new Error(url.split('?')[0] + ': ' + (body.error || r.status));
    return body;
  },

  bytes(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return (v < 0 ? '-' : '') + x.toFixed(x >= 100 || i === 0 ? 0 : 1) + ' ' + units[i];
  },

  num(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    return Number.isInteger(v) ? String(v) : v.toFixed(2);
  },

  time(ms) {
    if (ms === null || ms === undefined) return '–';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  },

  duration(ms) {
    const s = Math.round(ms / 1000);
    if (Math.abs(s) < 120) return s + ' s';
    if (Math.abs(s) < 7200) return Math.round(s / 60) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  },

  // A copy of the current URL with `changes` applied (null deletes).
  url(path, changes) {
    const p = ml.params();
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined) p.delete(k); else p.set(k, String(v));
    }
    const q = p.toString();
    return path + (q ? '?' + q : '');
  },

  // The time-travel form: the instant goes into the URL as `at` (ms).
  setupTravel(path, at, lastMs) {
    const input = document.getElementById('at-input');
    input.value = new Date(at).toISOString().slice(0, 19);
    document.getElementById('travel').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const ms = Date.parse(input.value + 'Z');
      if (isFinite(ms)) location.assign(ml.url(path, { at: ms, from: null, to: null }));
    });
    document.getElementById('now-link').setAttribute('href', ml.url(path, { at: null, from: null, to: null }));
    const live = ml.intParam('at') === null;
    document.getElementById('when').textContent =
      (live ? 'latest: ' : 'time travel: ') + ml.time(at) + (live ? '' : ' (history ends ' + ml.time(lastMs) + ')');
    window.memlens.at = at;
  },

  fail(err) {
    window.memlens.errors.push(String(err && err.message || err));
    document.getElementById('status').textContent = String(err && err.message || err);
  },

  severityClass(s) {
    return ['critical', 'warning', 'info'].includes(s) ? 'sev-' + s : '';
  },
};
