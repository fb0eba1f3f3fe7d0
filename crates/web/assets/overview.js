// The host overview: host memory, then every process and cgroup alive at
// the instant, riskiest first (active findings, then usage against the kill point).
'use strict';

(async function overview() {
  try {
    const info = await ml.json('/api/v1/info');
    if (info.last_ms === null) throw new Error('the history has no samples yet');
    const at = ml.intParam('at') ?? info.last_ms;
    ml.setupTravel('/', at, info.last_ms);
    const list = await ml.json('/api/v1/entities?at=' + at);
    const host = document.getElementById('host');
    const tbody = document.querySelector('#entities tbody');
    const rows = [];
    for (const e of list.entities) {
      if (e.kind === 'host') {
        host.append(
          card('host memory in use', ml.bytes(e.used_bytes) + ' of ' + ml.bytes(e.kill_point_bytes)),
          card('active findings on the host', String(e.findings.length)));
        host.append(await pressure(e.id, at));
        continue;
      }
      const name = e.kind === 'process' ? (e.comm || '?') + (e.cmdline ? ' — ' + e.cmdline : '') : e.cgroup;
      const link = ml.el('a', { href: '/process?id=' + e.id + '&at=' + at, class: 'entity-link' }, name || e.key);
      const ratio = e.used_ratio;
      const bar = ml.el('span', { class: 'ratio' + (ratio > 0.95 ? ' critical' : ratio > 0.8 ? ' high' : '') });
      const fill = ml.el('span');
      fill.style.width = Math.min(100, (ratio || 0) * 100).toFixed(1) + '%';
      bar.append(fill);
      const findings = ml.el('td');
      for (const f of e.findings) {
        findings.append(ml.el('div', { class: ml.severityClass(f.severity) }, f.severity + ' ' + f.id));
      }
      const kill = e.forecast ? ml.time(e.forecast.kill_ms) + ' (in ' + ml.duration(e.forecast.kill_ms - at) + ')' : '';
      const tr = ml.el('tr', { 'data-entity': String(e.id), 'data-kind': e.kind },
        ml.el('td', {}, e.kind),
        ml.el('td', { class: 'name' }, link),
        ml.el('td', {}, e.pid ?? ''),
        ml.el('td', {}, e.go_version ?? ''),
        ml.el('td', {}, ml.bytes(e.used_bytes)),
        ml.el('td', {}, ml.bytes(e.kill_point_bytes)),
        ml.el('td', {}, bar, ' ', ratio === null ? '' : (ratio * 100).toFixed(0) + '%'),
        findings,
        ml.el('td', {}, kill));
      tbody.append(tr);
      rows.push({ id: e.id, kind: e.kind, pid: e.pid, comm: e.comm, cmdline: e.cmdline, used_bytes: e.used_bytes, risk: e.risk, findings: e.findings.map((f) => f.id) });
    }
    host.append(card('history', ml.time(info.first_ms) + ' to ' + ml.time(info.last_ms)),
      card('processes and cgroups at the instant', String(rows.length)));
    if (ml.intParam('at') === null) {
      // The agent's health as this page sees it: how fresh its last write is
      // (a live agent writes every interval; its counters are on /metrics).
      host.append(card('agent: last sample written', ml.duration(Date.now() - info.last_ms) + ' ago'));
    }
    window.memlens.entities = rows;
    window.memlens.ready = true;
  } catch (err) {
    ml.fail(err);
  }

  // Host memory pressure (PSI) over the minute before the instant: the
  // share of time some / all tasks stalled on memory.
  async function pressure(hostId, at) {
    const s = await ml.json('/api/v1/series?width=1&from=' + (at - 60000) + '&to=' + at +
      '&s=' + hostId + ':pressure_some_total_usec&s=' + hostId + ':pressure_full_total_usec');
    const pct = (i) => {
      const v = s.series[i].last[0];
      return v === null || v === undefined ? '–' : (v / 1e4).toFixed(1) + ' %';
    };
    return card('memory pressure, last minute (PSI some / full)', pct(0) + ' / ' + pct(1));
  }

  function card(label, value) {
    return ml.el('div', { class: 'card' }, ml.el('div', {}, label), ml.el('div', { class: 'value' }, value));
  }
})();
