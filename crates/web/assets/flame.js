// memlens: a flame graph drawn on a canvas from the tree of /api/v1/flame
// ({n: name, v: width, new, old, c: [children]}). Names are drawn with
// fillText and shown on hover through textContent: never parsed as HTML.
// Shared by the dashboard's profiles page and `memlens report`.
'use strict';

const memlensFlame = {
  ROW_PX: 16,

  // The frame with the most width of its own (not passed on to callees).
  widestSelf(tree) {
    let best = null;
    const walk = (n, depth) => {
      const own = n.v - (n.c || []).reduce((s, c) => s + c.v, 0);
      if (depth > 0 && own > 0 && (!best || own > best.value)) best = { name: n.n, value: own };
      for (const c of n.c || []) walk(c, depth + 1);
    };
    walk(tree, 0);
    return best;
  },

  depth(tree) {
    return 1 + Math.max(0, ...(tree.c || []).map((c) => memlensFlame.depth(c)));
  },

  // Hue from the name (stable across redraws); a difference is all red
  // (every width there is growth), darker the more of the node is growth.
  color(n, diff) {
    if (diff) {
      const share = n.new ? Math.min(1, n.v / n.new) : 1;
      return 'hsl(0, ' + Math.round(40 + 50 * share) + '%, ' + Math.round(75 - 20 * share) + '%)';
    }
    let h = 0;
    for (let i = 0; i < n.n.length; i++) h = (h * 31 + n.n.charCodeAt(i)) >>> 0;
    return 'hsl(' + (10 + (h % 45)) + ', 80%, ' + (55 + (h % 20)) + '%)';
  },

  // Draws `tree` into `box` (an element), root at the top; `fmt(v)` labels
  // widths. Returns what was drawn (for the test hook).
  draw(box, tree, fmt, diff) {
    box.replaceChildren();
    const canvas = document.createElement('canvas');
    const tip = document.createElement('div');
    tip.className = 'flame-tip';
    const width = Math.max(300, box.clientWidth || 1000);
    const rows = memlensFlame.depth(tree);
    const ratio = window.devicePixelRatio || 1;
    canvas.width = width * ratio;
    canvas.height = rows * memlensFlame.ROW_PX * ratio;
    canvas.style.width = width + 'px';
    canvas.style.height = rows * memlensFlame.ROW_PX + 'px';
    const g = canvas.getContext('2d');
    g.scale(ratio, ratio);
    g.font = '11px monospace';
    g.textBaseline = 'middle';
    const rects = [];
    const scale = tree.v > 0 ? width / tree.v : 0;
    const walk = (n, x, depth) => {
      const w = n.v * scale;
      if (w < 0.5) return;
      const y = depth * memlensFlame.ROW_PX;
      g.fillStyle = memlensFlame.color(n, diff);
      g.fillRect(x, y, w - 0.5, memlensFlame.ROW_PX - 1);
      if (w > 30) {
        g.fillStyle = '#000';
        g.save();
        g.beginPath();
        g.rect(x, y, w - 2, memlensFlame.ROW_PX);
        g.clip();
        g.fillText(n.n, x + 2, y + memlensFlame.ROW_PX / 2);
        g.restore();
      }
      rects.push({ x, y, w, n });
      let cx = x;
      for (const c of n.c || []) { walk(c, cx, depth + 1); cx += c.v * scale; }
    };
    walk(tree, 0, 0);
    canvas.addEventListener('mousemove', (ev) => {
      const r = canvas.getBoundingClientRect();
      const x = ev.clientX - r.left;
      const y = ev.clientY - r.top;
      const hit = rects.find((q) => x >= q.x && x < q.x + q.w && y >= q.y && y < q.y + memlensFlame.ROW_PX);
      tip.textContent = hit ? hit.n.n + ': ' + fmt(hit.n.v) + (diff ? ' grown (' + fmt(hit.n.old || 0) + ' → ' + fmt(hit.n.new || 0) + ')' : '') +
        ' (' + (100 * hit.n.v / tree.v).toFixed(1) + '%)' : '';
    });
    box.append(canvas, tip);
    return { drawn: true, frames: rects.length, total: tree.v, widest: memlensFlame.widestSelf(tree), names: rects.map((q) => q.n.n) };
  },
};
