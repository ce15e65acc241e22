// The gdpnet dashboard: polls /api/status and draws the view it returns.
// Plain JavaScript, no dependencies; nothing is sent but GET requests.
'use strict';

const POLL_MS = 1000;   // how often the page asks
const HISTORY = 60;     // rate samples kept per counter (the sparkline)
const NAME_RE = /^[A-Za-z0-9_-]{43}$/;
const NUM_RE = /^-?[0-9][0-9.,]*( ?[a-zA-Z%/]+)?$/;

let prev = null;            // the previous view
const history = new Map();  // counter id -> recent rates

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + ' M';
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + ' k';
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(1);
}

function setState(cls, text) {
  const s = document.getElementById('state');
  s.className = 'state ' + cls;
  s.textContent = text;
}

function renderCards(cards) {
  const box = document.getElementById('cards');
  box.replaceChildren();
  for (const c of cards || []) {
    const d = el('div', 'card' + (c.warn ? ' warn' : ''));
    d.id = 'card-' + c.id;
    d.append(el('div', 'label', c.label), el('div', NAME_RE.test(c.value) ? 'value name' : 'value', c.value));
    box.append(d);
  }
}

function sparkline(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', '0 0 100 20');
  svg.setAttribute('preserveAspectRatio', 'none');
  const base = document.createElementNS(ns, 'line');
  base.setAttribute('x1', '0'); base.setAttribute('x2', '100');
  base.setAttribute('y1', '19.5'); base.setAttribute('y2', '19.5');
  svg.append(base);
  if (values.length > 1) {
    const max = Math.max(...values, 1e-9);
    const step = 100 / (HISTORY - 1);
    const x0 = 100 - step * (values.length - 1);
    const pts = values.map((v, i) => (x0 + i * step).toFixed(1) + ',' + (19 - 18 * v / max).toFixed(1));
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    svg.append(line);
  }
  return svg;
}

function renderCounters(v) {
  const box = document.getElementById('counters');
  box.replaceChildren();
  const before = new Map();
  if (prev) for (const c of prev.counters || []) before.set(c.id, c.value);
  const dt = prev ? (Date.parse(v.time) - Date.parse(prev.time)) / 1000 : 0;
  const groups = new Map();
  for (const c of v.counters || []) {
    if (!groups.has(c.group)) groups.set(c.group, []);
    groups.get(c.group).push(c);
  }
  for (const [group, cs] of groups) {
    const p = el('div', 'panel');
    p.id = 'grp-' + group.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    p.append(el('h2', '', group));
    const t = el('table');
    const hr = el('tr');
    hr.append(el('th', '', ''), el('th', 'num', 'total'), el('th', 'num', 'per second'), el('th', '', 'last minute'));
    t.append(hr);
    for (const c of cs) {
      let rate = null;
      if (dt > 0 && before.has(c.id) && c.value >= before.get(c.id)) rate = (c.value - before.get(c.id)) / dt;
      const h = history.get(c.id) || [];
      if (rate !== null) { h.push(rate); if (h.length > HISTORY) h.shift(); }
      history.set(c.id, h);
      const tr = el('tr', rate > 0 ? 'active' : '');
      tr.id = 'ctr-' + c.id;
      tr.dataset.value = String(c.value);
      tr.dataset.rate = rate === null ? '' : String(rate);
      const spark = el('td');
      spark.append(sparkline(h));
      tr.append(el('td', '', c.label), el('td', 'num', fmt(c.value)), el('td', 'num rate', rate === null ? '…' : fmt(rate)), spark);
      t.append(tr);
    }
    p.append(t);
    box.append(p);
  }
}

function renderTables(tables) {
  const box = document.getElementById('tables');
  box.replaceChildren();
  for (const tb of tables || []) {
    const p = el('div', 'panel');
    p.id = 'tbl-' + tb.id;
    const rows = tb.rows || [];
    const h = el('h2', '', tb.title + ' ');
    h.append(el('span', 'more', tb.total ? '(first ' + rows.length + ' of ' + tb.total + ')' : '(' + rows.length + ')'));
    p.append(h);
    if (rows.length === 0) {
      p.append(el('div', 'empty', 'none'));
      box.append(p);
      continue;
    }
    const numeric = tb.columns.map((_, i) => rows.every(r => r[i] === '' || NUM_RE.test(r[i])));
    const t = el('table');
    const hr = el('tr');
    tb.columns.forEach((c, i) => hr.append(el('th', numeric[i] ? 'num' : '', c)));
    t.append(hr);
    for (const r of rows) {
      const tr = el('tr');
      r.forEach((cell, i) => {
        const td = el('td', numeric[i] ? 'num' : (NAME_RE.test(cell) ? 'name' : ''), cell);
        tr.append(td);
      });
      t.append(tr);
    }
    p.append(t);
    box.append(p);
  }
}

function render(v) {
  document.title = v.title;
  document.getElementById('title').textContent = v.title;
  renderCards(v.cards);
  renderCounters(v);
  renderTables(v.tables);
  document.body.dataset.kind = v.kind;
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  prev = v;
}

async function poll() {
  try {
    const r = await fetch('/api/status', { cache: 'no-store' });
    if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
    const v = await r.json();
    render(v);
    setState('live', 'live · ' + new Date(v.time).toLocaleTimeString());
  } catch (e) {
    setState('down', 'no answer: ' + e.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
