/* The weir dashboard (docs/rest.md, "Dashboard"): plain JavaScript, no framework, no build step.
 *
 * Views, chosen by location.hash: #/ (the job list), #/jobs/{id} (a job: its graph with per-vertex
 * rates and backpressure, its checkpoints, its exceptions, the cancel / savepoint / stop buttons)
 * and #/taskmanagers. Every view refreshes itself every REFRESH_MS; a refresh fetches everything
 * it shows first and then redraws, and is dropped when the view changed meanwhile (state.gen).
 *
 * REST: every call goes through api(), which sends "Authorization: Bearer <token>" when the user
 * typed one (kept in sessionStorage: this tab only, gone when it closes) and turns a 401 into the
 * token form. A path that answers 404 (a job manager without that endpoint) shows "not available"
 * in its panel and breaks nothing else. Data from the server is put into the page only as text
 * nodes and attribute values (never as HTML). */
'use strict';

(function () {
  const REFRESH_MS = 2000;
  /* A rate is taken over at least this long: the counters REST gives move only with the task
   * managers' heartbeats (heartbeat.interval, 1 s by default) and a source's in steps of its
   * batches, so an immediate refresh (a click) would divide one step, or none, by a few ms. */
  const RATE_WINDOW_MS = 1500;
  const TOKEN_KEY = 'weir.token';
  const NA = 'not available';
  const CKPT_ROWS = 20; // checkpoint history rows shown (REST keeps the last 50)

  const state = {
    gen: 0,            // bumped on every view change: a refresh of an older view is dropped
    timer: null,
    authPending: false,
    prev: {},          // "job/vertex" -> {t, in, out}: the previous sample, for the rates
    selected: null,    // the vertex id whose subtasks are shown
    running: false,    // a refresh is under way (one at a time) ...
    again: false,      // ... and another was asked for meanwhile: it runs right after
    refreshes: 0,      // refreshes completed: #refreshed's data-count (tests wait on it)
  };

  class AuthError extends Error {}

  // ---- helpers --------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
  }

  function append(e, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
  }

  function $(id) { return document.getElementById(id); }

  function replace(id, ...children) {
    const e = $(id);
    if (!e) return;
    e.replaceChildren();
    append(e, children);
  }

  function fmtCount(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '–';
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(2) + ' G';
    if (a >= 1e6) return (n / 1e6).toFixed(2) + ' M';
    if (a >= 1e4) return (n / 1e3).toFixed(1) + ' k';
    return Number.isInteger(n) || a >= 100 ? String(Math.round(n)) : n.toFixed(1);
  }

  function fmtBytes(n) {
    if (typeof n !== 'number') return n === null || n === undefined ? '–' : String(n);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = n;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : String(v)) + ' ' + units[i];
  }

  function fmtMs(ms) {
    if (typeof ms !== 'number' || ms < 0) return '–';
    if (ms < 1000) return ms + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.floor(s % 60) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function fmtTime(ms) {
    if (typeof ms !== 'number' || ms <= 0) return '–';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function stateSpan(s) {
    return el('span', { class: 'state state-' + s }, s);
  }

  function table(headers, rows, attrs) {
    return el('table', attrs || {},
      el('thead', {}, el('tr', {}, headers.map((h) => {
        const num = h.startsWith('#');
        return el('th', num ? { class: 'num' } : {}, num ? h.slice(1) : h);
      }))),
      el('tbody', {}, rows));
  }

  function td(v, num) { return el('td', num ? { class: 'num' } : {}, v); }

  /* A number cell that also carries the raw figure REST gave (data-metric, data-value), so that
   * what is shown can be checked against the answer it came from. */
  function tdRaw(text, metric, raw) {
    return el('td', { class: 'num', 'data-metric': metric,
      'data-value': raw === undefined || raw === null ? null : String(raw) }, text);
  }

  // ---- REST -----------------------------------------------------------------------------------

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  /* {status, body}: body is the parsed JSON answer (or null). A network error is status 0. A 401
   * shows the token form and throws AuthError (the refresh stops until a token is given). */
  async function api(path, method, body) {
    const headers = {};
    if (token() !== null) headers.Authorization = 'Bearer ' + token();
    const init = { method: method || 'GET', headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      return { status: 0, body: { error: 'job manager unreachable: ' + e.message } };
    }
    let parsed = null;
    try { parsed = await r.json(); } catch (e) { parsed = null; }
    if (r.status === 401) {
      askToken(token() !== null ? (parsed && parsed.error) || 'invalid token' : '');
      throw new AuthError('401');
    }
    return { status: r.status, body: parsed };
  }

  function errorText(res) {
    if (res.status === 404) return NA;
    const msg = res.body && res.body.error ? res.body.error : 'no answer';
    return res.status ? res.status + ': ' + msg : msg;
  }

  function askToken(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.authPending = true;
    $('token-form').hidden = false;
    $('token-error').textContent = msg || '';
    $('signout').hidden = true;
    $('token-input').focus();
  }

  function onTokenSubmit(ev) {
    ev.preventDefault();
    const t = $('token-input').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('token-input').value = '';
    $('token-form').hidden = true;
    $('signout').hidden = false;
    state.authPending = false;
    tick();
  }

  // ---- the refresh loop -----------------------------------------------------------------------

  function route() {
    const h = location.hash.replace(/^#/, '') || '/';
    let m;
    if ((m = h.match(/^\/jobs\/([0-9A-Za-z_-]+)$/))) return { view: 'job', id: m[1] };
    if (h === '/taskmanagers') return { view: 'tms' };
    return { view: 'jobs' };
  }

  function onRoute() {
    state.gen++;
    state.selected = null;
    const r = route();
    $('nav-jobs').className = r.view === 'tms' ? '' : 'active';
    $('nav-tms').className = r.view === 'tms' ? 'active' : '';
    if (r.view === 'job') buildJob(r.id);
    else if (r.view === 'tms') replace('view', el('section', { class: 'panel' },
      el('h2', {}, 'Task managers'), el('div', { id: 'tms' }, 'loading…')));
    else replace('view', el('section', { class: 'panel' },
      el('h2', {}, 'Jobs'), el('div', { id: 'jobs' }, 'loading…')));
    tick();
  }

  async function tick() {
    clearTimeout(state.timer);
    state.timer = null;
    if (state.authPending) return;
    if (state.running) { state.again = true; return; }
    state.running = true;
    state.again = false;
    const gen = state.gen;
    const r = route();
    try {
      await summary(gen);
      if (r.view === 'job') await refreshJob(gen, r.id);
      else if (r.view === 'tms') await refreshTms(gen);
      else await refreshJobs(gen);
      $('refreshed').textContent = 'updated ' + new Date().toLocaleTimeString();
      $('refreshed').dataset.count = String(++state.refreshes);
    } catch (e) {
      if (!(e instanceof AuthError)) {
        $('refreshed').textContent = 'refresh failed: ' + e.message;
        console.error('weir dashboard: refresh failed:', e); // a bug of the page: tests watch for it
      }
    }
    state.running = false;
    if (state.again) tick();
    else if (!state.authPending && state.timer === null) state.timer = setTimeout(tick, REFRESH_MS);
  }

  async function summary(gen) {
    const res = await api('/taskmanagers');
    if (gen !== state.gen) return;
    if (res.status !== 200) {
      replace('cluster-summary', errorText(res));
      return;
    }
    const tms = res.body.taskmanagers || [];
    const total = tms.reduce((a, t) => a + (t.slots_total || 0), 0);
    const free = tms.reduce((a, t) => a + (t.slots_free || 0), 0);
    replace('cluster-summary', tms.length + (tms.length === 1 ? ' task manager · ' : ' task managers · ') +
      free + ' of ' + total + ' slots free');
  }

  // ---- the job list ---------------------------------------------------------------------------

  async function refreshJobs(gen) {
    const res = await api('/jobs');
    if (gen !== state.gen) return;
    if (res.status !== 200) { replace('jobs', el('p', { class: 'error' }, errorText(res))); return; }
    const order = { RUNNING: 0, RESTARTING: 1, CREATED: 2 };
    const jobs = (res.body.jobs || []).slice().sort((a, b) =>
      ((order[a.state] ?? 9) - (order[b.state] ?? 9)) || (b.start_time - a.start_time));
    if (!jobs.length) { replace('jobs', el('p', { class: 'muted' }, 'No jobs.')); return; }
    const now = Date.now();
    replace('jobs', table(['Name', 'Job id', 'State', 'Started', '#Duration'], jobs.map((j) =>
      el('tr', { class: 'clickable job-row', 'data-job-id': j.id,
                 onclick: () => { location.hash = '#/jobs/' + j.id; } },
        td(el('a', { href: '#/jobs/' + j.id }, j.name)), td(el('code', {}, j.id)),
        td(stateSpan(j.state)), td(fmtTime(j.start_time)),
        td(fmtMs(j.start_time > 0 ? (j.end_time > 0 ? j.end_time : now) - j.start_time : -1), true))),
    { id: 'jobs-table' }));
  }

  // ---- a job ----------------------------------------------------------------------------------

  function buildJob(id) {
    replace('view',
      el('h2', { id: 'job-title' }, 'Job ', el('code', {}, id)),
      el('div', { id: 'job-meta' }),
      el('div', { class: 'actions' },
        el('button', { type: 'button', id: 'btn-cancel', onclick: () => confirmAction(id, 'cancel') }, 'Cancel'),
        el('button', { type: 'button', id: 'btn-savepoint', onclick: () => runAction(id, 'savepoint') }, 'Savepoint'),
        el('button', { type: 'button', id: 'btn-stop', onclick: () => confirmAction(id, 'stop') }, 'Stop with savepoint'),
        el('span', { id: 'action-confirm' }),
        el('span', { id: 'action-outcome' })),
      el('section', { class: 'panel' }, el('h3', {}, 'Graph'),
        el('div', { class: 'legend' }, 'backpressure: ',
          el('span', { class: 'bp-ok' }, 'ok'), el('span', { class: 'bp-low' }, 'low'),
          el('span', { class: 'bp-high' }, 'high'), el('span', { class: 'bp-na' }, 'n/a: ' + NA),
          el('span', { class: 'muted' }, 'click a vertex for its subtasks')),
        el('div', { id: 'graph' }, 'loading…'), el('div', { id: 'vertex-detail' })),
      el('section', { class: 'panel' }, el('h3', {}, 'Checkpoints'), el('div', { id: 'checkpoints' }, 'loading…')),
      el('section', { class: 'panel' }, el('h3', {}, 'Exceptions'), el('div', { id: 'exceptions' }, 'loading…')));
  }

  const TERMINAL = new Set(['FINISHED', 'FAILED', 'CANCELED']);

  async function refreshJob(gen, id) {
    const enc = encodeURIComponent(id);
    const [job, ck, ex] = await Promise.all([
      api('/jobs/' + enc), api('/jobs/' + enc + '/checkpoints'), api('/jobs/' + enc + '/exceptions')]);
    if (gen !== state.gen) return;
    if (job.status !== 200) {
      replace('job-meta', el('p', { class: 'error' }, errorText(job)));
      return;
    }
    const j = job.body;
    const vertices = j.vertices || [];
    const running = j.state === 'RUNNING';
    const [bps, detail] = await Promise.all([
      Promise.all(vertices.map((v) => running
        ? api('/jobs/' + enc + '/vertices/' + v.id + '/backpressure')
        : Promise.resolve({ status: 404, body: null }))),
      state.selected !== null ? api('/jobs/' + enc + '/vertices/' + state.selected)
        : Promise.resolve(null)]);
    if (gen !== state.gen) return;
    renderJobMeta(j);
    renderGraph(j, bps);
    renderVertexDetail(j, detail);
    renderCheckpoints(ck);
    renderExceptions(j, ex);
  }

  function renderJobMeta(j) {
    replace('job-title', j.name + ' ', el('code', {}, j.id));
    const end = j.end_time > 0 ? j.end_time : Date.now();
    replace('job-meta', el('span', { id: 'job-state' }, stateSpan(j.state)),
      ' · started ' + fmtTime(j.start_time) + ' · duration ' +
      fmtMs(j.start_time > 0 ? end - j.start_time : -1) + ' · attempt ' + j.attempt +
      ' · restarts ' + j.restarts,
      j.message ? el('div', { class: TERMINAL.has(j.state) || j.state === 'RESTARTING' ? 'error' : 'muted' }, j.message) : null);
    for (const b of ['btn-cancel', 'btn-savepoint', 'btn-stop']) $(b).disabled = TERMINAL.has(j.state);
  }

  /* Per-vertex records/s from this sample and the previous one at least RATE_WINDOW_MS older
   * ({in, out, window} with window in ms; null until there are two, or when a counter went back:
   * a restart). A sample closer than that to the previous one keeps the previous one and its
   * rate. */
  function rates(j, v, now) {
    const key = j.id + '/' + v.id;
    const m = v.metrics || {};
    const cur = { t: now, in: m.records_in || 0, out: m.records_out || 0, attempt: j.attempt };
    const p = state.prev[key];
    if (p && p.attempt === cur.attempt && cur.t - p.t < RATE_WINDOW_MS) return p.rate || null;
    state.prev[key] = cur;
    if (!p || p.attempt !== cur.attempt) return null;
    const dt = (cur.t - p.t) / 1000;
    const r = { in: (cur.in - p.in) / dt, out: (cur.out - p.out) / dt, window: Math.round(cur.t - p.t) };
    if (r.in < 0 || r.out < 0) return null;
    cur.rate = r;
    return r;
  }

  /* Columns by longest path from a source; rows by id within a column. */
  function layout(vertices) {
    const col = {};
    for (const v of vertices) col[v.id] = 0;
    for (let pass = 0; pass < vertices.length; pass++) {
      let changed = false;
      for (const v of vertices)
        for (const i of v.inputs || []) {
          const c = (col[i.source] ?? 0) + 1;
          if (c > col[v.id]) { col[v.id] = c; changed = true; }
        }
      if (!changed) break;
    }
    const rows = {};
    const pos = {};
    for (const v of vertices.slice().sort((a, b) => a.id - b.id)) {
      const c = col[v.id];
      rows[c] = (rows[c] || 0) + 1;
      pos[v.id] = { c, r: rows[c] - 1 };
    }
    return { pos, cols: Math.max(0, ...Object.values(col)) + 1, rows: Math.max(1, ...Object.values(rows)) };
  }

  function renderGraph(j, bps) {
    const W = 270, H = 70, GX = 90, GY = 30, PAD = 16;
    const vertices = j.vertices || [];
    const { pos, cols, rows } = layout(vertices);
    const width = PAD * 2 + cols * W + (cols - 1) * GX;
    const height = PAD * 2 + rows * H + (rows - 1) * GY;
    const xy = (id) => ({ x: PAD + pos[id].c * (W + GX), y: PAD + pos[id].r * (H + GY) });
    const now = performance.now();
    const g = svg('svg', { class: 'graph', id: 'job-graph', width, height, viewBox: `0 0 ${width} ${height}` },
      svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5,
        markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z' }))));
    for (const v of vertices) {
      const ins = v.inputs || [];
      ins.forEach((inp, k) => {
        if (!pos[inp.source]) return;
        const a = xy(inp.source), b = xy(v.id);
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2 + (k - (ins.length - 1) / 2) * 16;
        const mx = (x1 + x2) / 2;
        g.appendChild(svg('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
          'marker-end': 'url(#arrow)' }));
        g.appendChild(svg('text', { class: 'edge-label', x: mx, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle' },
          (inp.partitioning || '').toLowerCase()));
      });
    }
    vertices.forEach((v, i) => {
      const { x, y } = xy(v.id);
      const bp = bps[i] || { status: 0 };
      let level = 'na', bpText = 'backpressure n/a';
      if (bp.status === 200 && bp.body && bp.body['backpressure-level']) {
        level = String(bp.body['backpressure-level']).toLowerCase();
        if (!['ok', 'low', 'high'].includes(level)) level = 'na';
        const ratios = (bp.body.subtasks || []).map((s) => s.ratio).filter((r) => typeof r === 'number');
        bpText = 'backpressure ' + level + (ratios.length ? ' (' + Math.round(100 * Math.max(...ratios)) + ' %)' : '');
      }
      const r = rates(j, v, now);
      const name = v.name.length > 34 ? v.name.slice(0, 33) + '…' : v.name;
      g.appendChild(svg('g', { class: 'vertex bp-' + level + (state.selected === v.id ? ' selected' : ''),
        transform: `translate(${x},${y})`, 'data-vertex-id': v.id, 'data-name': v.name,
        'data-backpressure': level, 'data-rate-window-ms': r ? r.window : null, onclick: () => { state.selected = state.selected === v.id ? null : v.id; tick(); } },
        svg('title', {}, v.name),
        svg('rect', { class: 'box', width: W, height: H, rx: 4 }),
        svg('rect', { class: 'bar', width: 6, height: H, rx: 2 }),
        svg('text', { class: 'name', x: 14, y: 19 }, name),
        svg('text', { class: 'info', x: 14, y: 38 }, 'parallelism ' + v.parallelism + ' · ' + bpText),
        svg('text', { class: 'rate', x: 14, y: 57 }, r
          ? 'in ' + fmtCount(r.in) + '/s · out ' + fmtCount(r.out) + '/s'
          : 'in – /s · out – /s')));
    });
    replace('graph', g);
  }

  function renderVertexDetail(j, detail) {
    const v = (j.vertices || []).find((x) => x.id === state.selected);
    if (!v) { replace('vertex-detail'); return; }
    const flink = detail && detail.status === 200 && detail.body ? detail.body.subtasks || [] : null;
    const headers = ['#Subtask', 'State', 'Task manager', '#Records in', '#Records out', '#Backpressured'];
    if (flink) headers.push('#Busy', '#Idle');
    const rows = (v.subtasks || []).map((s) => {
      const m = s.metrics || {};
      const f = flink ? (flink.find((x) => x.subtask === s.subtask) || {}).metrics || {} : null;
      const bpMs = f ? f['accumulated-backpressured-time'] : m.backpressured_ms;
      return el('tr', { 'data-subtask': s.subtask }, td(s.subtask, true), td(stateSpan(s.state)),
        td(s.taskmanager || '–'), td(fmtCount(m.records_in), true), td(fmtCount(m.records_out), true),
        tdRaw(fmtMs(bpMs), 'backpressured', bpMs),
        f ? tdRaw(fmtMs(f['accumulated-busy-time']), 'busy', f['accumulated-busy-time']) : null,
        f ? tdRaw(fmtMs(f['accumulated-idle-time']), 'idle', f['accumulated-idle-time']) : null);
    });
    replace('vertex-detail', el('h3', {}, 'Subtasks of ' + v.name),
      flink ? null : el('p', { class: 'muted' }, 'busy / idle time: ' + NA),
      table(headers, rows, { id: 'subtasks-table' }));
  }

  function renderCheckpoints(ck) {
    if (ck.status !== 200) { replace('checkpoints', el('p', { class: 'muted' }, errorText(ck))); return; }
    const b = ck.body;
    const c = b.counts || {};
    const all = (b.history || []).slice().sort((x, y) => y.id - x.id);
    const hist = all.slice(0, CKPT_ROWS);
    const restored = b.latest && b.latest.restored;
    replace('checkpoints',
      el('p', {}, `triggered ${c.triggered} · in progress ${c.in_progress} · completed ${c.completed} · ` +
        `failed ${c.failed} · restored ${c.restored}`,
      restored ? el('span', { class: 'muted' }, ' · last restore: ' + restored.path) : null),
      hist.length ? table(['#Id', 'Type', 'Status', 'Triggered', '#Duration', '#State size', '#Uploaded',
        '#Alignment', 'Failure'], hist.map((h) => el('tr', { 'data-checkpoint-id': h.id },
        td(h.id, true), td(h.checkpoint_type), td(stateSpan(h.status)), td(fmtTime(h.trigger_timestamp)),
        td(fmtMs(h.duration_ms), true), td(fmtBytes(h.state_size), true), td(fmtBytes(h.uploaded_size), true),
        td(fmtMs(h.alignment_duration_ms), true), td(h.failure || ''))), { id: 'checkpoints-table' })
        : el('p', { class: 'muted' }, 'No checkpoints yet.'),
      all.length > hist.length ? el('p', { class: 'muted' }, `the latest ${hist.length} of ${all.length} shown`) : null);
  }

  function renderExceptions(j, ex) {
    if (ex.status !== 200) {
      replace('exceptions', el('p', { class: 'muted', id: 'exceptions-na' }, errorText(ex)));
      return;
    }
    const entries = (ex.body && ex.body.exceptionHistory && ex.body.exceptionHistory.entries) || [];
    if (!entries.length) { replace('exceptions', el('p', { class: 'muted' }, 'No exceptions.')); return; }
    replace('exceptions', table(['Time', 'Exception', 'Task', 'Task manager', 'Cause'],
      entries.map((e) => el('tr', { class: 'exception-row' }, td(fmtTime(e.timestamp)), td(e.exceptionName || ''),
        td(e.taskName || '–'), td(e.taskManagerId || e.location || '–'),
        td(el('pre', { class: 'trace' }, e.stacktrace || '')))), { id: 'exceptions-table' }));
  }

  // ---- actions --------------------------------------------------------------------------------

  function confirmAction(id, what) {
    const label = what === 'cancel' ? 'Cancel the job?' : 'Stop the job with a savepoint?';
    replace('action-confirm', label + ' ',
      el('button', { type: 'button', id: 'confirm-yes', onclick: () => { replace('action-confirm'); runAction(id, what); } }, 'Yes'),
      ' ',
      el('button', { type: 'button', id: 'confirm-no', onclick: () => replace('action-confirm') }, 'No'));
  }

  async function runAction(id, what) {
    const enc = encodeURIComponent(id);
    const out = (cls, text) => replace('action-outcome', el('span', { class: cls, id: 'outcome-text' }, text));
    out('muted', (what === 'cancel' ? 'Cancel' : what === 'stop' ? 'Stop' : 'Savepoint') + ': sending…');
    try {
      if (what === 'cancel') {
        const r = await api('/jobs/' + enc + '/cancel', 'POST', {});
        if (r.status === 202) out('', 'Cancel accepted: ' + (r.body && r.body.state));
        else out('error', 'Cancel refused: ' + errorText(r));
        tick();
        return;
      }
      const path = what === 'stop' ? '/jobs/' + enc + '/stop' : '/jobs/' + enc + '/savepoints';
      const name = what === 'stop' ? 'Stop' : 'Savepoint';
      const r = await api(path, 'POST', {});
      if (r.status !== 202 || !r.body || !r.body['request-id']) {
        out('error', name + ' refused: ' + errorText(r));
        return;
      }
      const rid = r.body['request-id'];
      out('muted', name + ' in progress (request ' + rid + ')…');
      const deadline = Date.now() + 10 * 60 * 1000;
      while (Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 1000));
        const s = await api('/jobs/' + enc + '/savepoints/' + encodeURIComponent(rid));
        if (s.status === 0) continue; // unreachable for now (a job manager restarting): poll on
        if (s.status === 404) {
          out('error', name + ': the job manager no longer knows request ' + rid +
            ' (restarted?): see the job\'s checkpoints for the savepoint');
          return;
        }
        if (s.status !== 200) { out('error', name + ': ' + errorText(s)); return; }
        if (s.body.status && s.body.status.id === 'COMPLETED') {
          const op = s.body.operation || {};
          if (op.location) out('', name + ' completed: ' + op.location);
          else {
            const f = op['failure-cause'] || {};
            out('error', name + ' failed: ' + (f['stack-trace'] || f.class || 'unknown cause'));
          }
          tick();
          return;
        }
      }
      out('error', name + ': still in progress after 10 minutes (request ' + rid + ')');
    } catch (e) {
      if (!(e instanceof AuthError)) out('error', what + ' failed: ' + e.message);
    }
  }

  // ---- task managers --------------------------------------------------------------------------

  const BYTES_KEY = /bytes|memory|rss|size|heap|cache|network|managed|process/i;
  const TIME_KEY = /Since$/;                  // a wall-clock time, ms since the epoch
  const MS_KEY = /^timeSince|[a-z]Time$/;     // a duration in ms (timeSinceLastHeartbeat, cpuTime)

  /* One row per member: data-key is its path in the answer ("metrics.residentMemory"), data-value
   * the member's JSON as REST gave it. */
  function kvTable(obj, bytes, prefix) {
    return el('table', { class: 'kv' }, el('tbody', {}, Object.entries(obj).map(([k, v]) => {
      let shown;
      if (v !== null && typeof v === 'object') shown = JSON.stringify(v);
      else if (typeof v === 'number' && TIME_KEY.test(k)) shown = el('span', { title: String(v) }, fmtTime(v));
      else if (typeof v === 'number' && MS_KEY.test(k)) shown = el('span', { title: String(v) }, fmtMs(v));
      else if (typeof v === 'number' && (bytes || BYTES_KEY.test(k))) shown = el('span', { title: String(v) }, fmtBytes(v));
      else shown = v === null ? '–' : String(v);
      return el('tr', { 'data-key': (prefix ? prefix + '.' : '') + k, 'data-value': JSON.stringify(v) },
        td(k), td(shown));
    })));
  }

  async function refreshTms(gen) {
    const res = await api('/taskmanagers');
    if (gen !== state.gen) return;
    if (res.status !== 200) { replace('tms', el('p', { class: 'error' }, errorText(res))); return; }
    const tms = res.body.taskmanagers || [];
    const details = await Promise.all(tms.map((t) => api('/taskmanagers/' + encodeURIComponent(t.id))));
    if (gen !== state.gen) return;
    if (!tms.length) { replace('tms', el('p', { class: 'muted' }, 'No task managers.')); return; }
    replace('tms',
      table(['Id', 'Address', 'Data address', '#Slots', '#Free', '#Last heartbeat', '#Pid'], tms.map((t) =>
        el('tr', { class: 'tm-row', 'data-tm-id': t.id }, td(t.id), td(t.address), td(t.data_address),
          td(t.slots_total, true), td(t.slots_free, true), td(t.last_heartbeat_ms_ago + ' ms ago', true),
          td(t.pid, true))), { id: 'tms-table' }),
      tms.map((t, i) => {
        const d = details[i];
        if (d.status !== 200 || !d.body)
          return el('div', { class: 'tm', 'data-tm-id': t.id }, el('h3', {}, t.id), el('p', { class: 'muted' }, 'details: ' + errorText(d)));
        const scalars = {}, objects = [];
        for (const [k, v] of Object.entries(d.body)) {
          if (v !== null && typeof v === 'object' && !Array.isArray(v)) objects.push([k, v]);
          else scalars[k] = v;
        }
        return el('div', { class: 'tm', 'data-tm-id': t.id }, el('h3', {}, t.id), kvTable(scalars, false),
          objects.map(([k, v]) => [el('h4', {}, k), kvTable(v, /memory/i.test(k), k)]));
      }));
  }

  // ---- start ----------------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', onTokenSubmit);
    $('signout').addEventListener('click', () => { askToken(''); });
    $('signout').hidden = token() === null;
    window.addEventListener('hashchange', onRoute);
    onRoute();
  });
})();
