/* dashboard.js -- the reqstats dashboard's behaviour (docs/API.md section 9).
 *
 * The page polls the service's own JSON endpoints and draws what they say:
 * GET /stats/ (totals, dropped hits, the URL table a page at a time, and
 * Redis's state: a 503 means Redis is unreachable), GET /stats/history/
 * (the request-rate chart), GET /test/runs/ (recent runs); the form starts
 * a run with POST /test/{n}/ and follows its status_url until it ends.
 *
 * Rules this file keeps:
 *   - Counted paths and every other server string are untrusted text: they
 *     reach the page through textContent and createTextNode only, never
 *     innerHTML (a path may hold ' and &).
 *   - Polling runs only while the tab is visible (Page Visibility API) and
 *     resumes at once when it is shown again; every poll counts as a
 *     request on the server, so the period stays a few seconds.
 *   - No promise is left to reject unhandled: request() never throws, and
 *     fire-and-forget calls go through spawn(), which reports a bug on the
 *     banner and the console.
 *   - A late answer never overwrites a newer one: each section numbers its
 *     requests and drops answers that are not the latest.
 *
 * The chart is hand-written SVG: one series of at most a few hundred
 * buckets does not need a library, SVG elements take text safely, and
 * nothing has to be vendored or allowed by the Content-Security-Policy.
 */
'use strict';

(function () {
  // Poll periods: while nothing runs, and while a listed run is queued or
  // running. `/?refresh=N` (1 to 60 seconds) sets the first; the second is
  // never longer than the first.
  const POLL_MS = refreshSeconds() * 1000;
  const FAST_POLL_MS = Math.min(2000, POLL_MS);
  const RUN_POLL_MS = 500;     // the run started from this form
  const FETCH_TIMEOUT_MS = 8000;
  const RUNS_SHOWN = 8;
  const ENDED = new Set(['done', 'failed', 'cancelled']);
  const SVGNS = 'http://www.w3.org/2000/svg';

  const fmtInt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const fmt1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  const state = {
    offset: 0,
    limit: 25,
    minutes: 60,          // the chart's range
    timer: 0,
    runTimer: 0,
    busy: false,
    fast: false,
    seq: { stats: 0, history: 0, runs: 0 },
    lastGood: null,       // Date of the last successful /stats/
    redisDownSince: null, // Date Redis was first seen unreachable
    history: null,        // the last good /stats/history/ body
    historyNote: '',
    watched: null,        // {id, url, ended} of the run this form started
    starting: false,      // a POST /test/{n}/ is on its way
    canCancel: true,
    runItems: new Map(),  // run id -> {li, ...parts} of the recent-runs list
  };

  const $ = (id) => document.getElementById(id);

  // Settings a bookmark can carry: `/?refresh=N` (poll period, 1 to 60
  // seconds) and `/?minutes=15|60|360|1440` (the chart's range).
  function refreshSeconds() {
    const v = new URLSearchParams(location.search).get('refresh');
    return v !== null && /^[0-9]{1,2}$/.test(v) ? Math.min(60, Math.max(1, Number(v))) : 5;
  }

  function initialMinutes() {
    const v = new URLSearchParams(location.search).get('minutes');
    return ['15', '60', '360', '1440'].includes(v) ? Number(v) : 60;
  }

  // ---- small helpers ------------------------------------------------------

  function isNum(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }

  function int(v) {
    return isNum(v) ? fmtInt.format(v) : '–';
  }

  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  function clock(d) {
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function hhmm(d) {
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes());
  }

  function rate(v) {
    if (!isNum(v)) return '–';
    return v >= 100 ? fmtInt.format(v) : fmt1.format(v);
  }

  function seconds(v) {
    if (!isNum(v)) return '';
    return v < 10 ? v.toFixed(2) + ' s' : fmt1.format(v) + ' s';
  }

  function when(iso) {
    const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
    if (!Number.isFinite(t)) return '';
    const d = new Date(t);
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return clock(d);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + hhmm(d);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // Report a bug (never an expected failure: those are handled where they
  // happen) instead of leaving an unhandled rejection.
  function report(err) {
    showBanner('error', 'The dashboard hit an internal error: ' + (err && err.message ? err.message : String(err)));
    console.error(err);
  }

  function spawn(promise) {
    promise.catch(report);
  }

  // One request; never throws. Returns {status, body, headers, error}:
  // status 0 when no answer came (network error or timeout), body null
  // when the answer was not JSON.
  async function request(method, url, headers) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(url, {
        method: method,
        headers: headers || {},
        cache: 'no-store',
        credentials: 'same-origin',
        redirect: 'error',
        signal: ctl.signal,
      });
      let body = null;
      try {
        body = await r.json();
      } catch (e) {
        body = null;
      }
      return { status: r.status, body: body, headers: r.headers, error: '' };
    } catch (e) {
      const error = e && e.name === 'AbortError' ? 'no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s' : 'no connection';
      return { status: 0, body: null, headers: null, error: error };
    } finally {
      clearTimeout(timer);
    }
  }

  // The server's words for a failed request, as plain text.
  function errText(res) {
    if (res.status === 0) return res.error;
    const e = res.body && typeof res.body === 'object' ? res.body.error : null;
    const msg = e && typeof e.message === 'string' ? e.message : '';
    return 'HTTP ' + res.status + (msg ? ': ' + msg : '');
  }

  function serviceDown(res) {
    return res.status === 0 || res.status === 502 || res.status === 504;
  }

  // ---- banner and live indicator ---------------------------------------------

  function showBanner(kind, text) {
    const b = $('banner');
    if (!kind) {
      b.hidden = true;
      setText(b, '');
      return;
    }
    b.className = 'banner' + (kind === 'error' ? ' banner-error' : '');
    setText(b, text);
    b.hidden = false;
  }

  function setLive(kind, text) {
    $('live-dot').className = 'dot' + (kind ? ' ' + kind : '');
    setText($('live-text'), text);
  }

  function asOf() {
    return state.lastGood ? 'The numbers below are from ' + clock(state.lastGood) + '.' : 'No numbers could be read yet.';
  }

  // outcome: what refreshStats() found.
  function showOutcome(outcome) {
    if (outcome.kind === 'ok') {
      showBanner(null);
      setLive('ok', 'Live · updated ' + clock(new Date()));
    } else if (outcome.kind === 'redis') {
      showBanner('warn', 'Redis is unreachable. Requests are still answered, and the workers hold their counts ' +
        'until Redis is back. ' + asOf());
      setLive('warn', 'Redis unreachable');
    } else if (outcome.kind === 'down') {
      showBanner('error', 'The service is not answering (' + outcome.text + '). ' + asOf() +
        ' Trying again every few seconds.');
      setLive('err', 'Service unreachable');
    } else if (outcome.kind === 'error') {
      showBanner('error', 'Could not read /stats/ (' + outcome.text + '). ' + asOf());
      setLive('err', 'Error');
    }
  }

  function markStale(stale) {
    for (const id of ['total', 'unique', 'dropped']) {
      $(id).classList.toggle('stale', stale);
    }
  }

  // ---- totals, Redis and the URL table -------------------------------------------

  function setRedis(up) {
    const s = $('redis-state');
    if (up) {
      state.redisDownSince = null;
      s.className = 'state state-up';
      setText(s, 'Up');
      setText($('redis-note'), 'answering');
    } else {
      if (!state.redisDownSince) state.redisDownSince = new Date();
      s.className = 'state state-down';
      setText(s, 'Unreachable');
      setText($('redis-note'), 'since ' + clock(state.redisDownSince));
    }
  }

  function renderTotals(b) {
    setText($('total'), int(b.total_requests));
    setText($('unique'), int(b.unique_urls));
    const dropped = b.dropped_hits;
    setText($('dropped'), int(dropped));
    $('dropped').classList.toggle('warn-value', isNum(dropped) && dropped > 0);
    setText($('dropped-note'), isNum(dropped) && dropped > 0
      ? 'lost to a full worker buffer; see the app log'
      : 'lost to a full worker buffer');
    markStale(false);
  }

  function renderUrls(b) {
    const total = isNum(b.total_requests) ? b.total_requests : 0;
    const offset = isNum(b.offset) ? b.offset : state.offset;
    const rows = [];
    b.urls.forEach((u, i) => {
      const tr = document.createElement('tr');
      const count = u && isNum(u.count) ? u.count : NaN;
      const share = total > 0 && isNum(count) ? (count / total) * 100 : 0;
      const shareCell = el('td', 'share');
      const inner = el('span', 'share-in');
      inner.appendChild(el('span', 'share-pct', share >= 10 ? share.toFixed(0) + '%' : share.toFixed(1) + '%'));
      const bar = el('span', 'share-bar');
      const fill = el('span', 'share-fill');
      fill.style.width = Math.min(100, share).toFixed(2) + '%';
      bar.appendChild(fill);
      inner.appendChild(bar);
      shareCell.appendChild(inner);
      tr.append(
        el('td', 'rank', int(offset + i + 1)),
        el('td', 'url', u && typeof u.url === 'string' ? u.url : String(u && u.url)),
        el('td', 'count', int(count)),
        shareCell);
      rows.push(tr);
    });
    $('urls-body').replaceChildren(...rows);
    setText($('urls-empty'), 'No requests counted yet.');
    $('urls-empty').hidden = rows.length > 0;
    $('urls').hidden = rows.length === 0;
    const unique = isNum(b.unique_urls) ? b.unique_urls : 0;
    setText($('range'), rows.length
      ? int(offset + 1) + '–' + int(offset + rows.length) + ' of ' + int(unique)
      : '');
    $('prev').disabled = offset <= 0;
    $('next').disabled = b.next === null || b.next === undefined || rows.length === 0;
  }

  async function refreshStats() {
    const seq = ++state.seq.stats;
    const res = await request('GET', '/stats/?offset=' + state.offset + '&limit=' + state.limit);
    if (seq !== state.seq.stats) return { kind: 'stale' };
    const b = res.body;
    if (res.status === 200 && b && Array.isArray(b.urls)) {
      // The page we were on is past the end (counts were reset): go to
      // the last page that has rows.
      if (b.urls.length === 0 && state.offset > 0) {
        const unique = isNum(b.unique_urls) ? b.unique_urls : 0;
        state.offset = Math.max(0, Math.ceil(unique / state.limit) - 1) * state.limit;
        return refreshStats();
      }
      state.lastGood = new Date();
      setRedis(true);
      renderTotals(b);
      renderUrls(b);
      return { kind: 'ok' };
    }
    markStale(true);
    let outcome;
    if (res.status === 503) {
      setRedis(false);
      outcome = { kind: 'redis' };
    } else if (serviceDown(res)) {
      outcome = { kind: 'down', text: errText(res) };
    } else {
      outcome = { kind: 'error', text: errText(res) };
    }
    if (!state.lastGood) {
      // Nothing to show yet: say why where the table would be.
      $('urls').hidden = true;
      setText($('urls-empty'), outcome.kind === 'redis'
        ? 'No counts yet: Redis is unreachable.'
        : 'No counts yet: /stats/ could not be read.');
      $('urls-empty').hidden = false;
    }
    return outcome;
  }

  // ---- the request-rate chart ----------------------------------------------------

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  }

  function chartMessage(text) {
    const box = $('chart');
    box.replaceChildren(el('div', 'chart-msg', text));
    box.setAttribute('aria-label', text);
    setText($('chart-summary'), '\u00a0');
  }

  // A round axis maximum and step for values up to max, about four steps.
  function niceScale(max) {
    if (!(max > 0)) return { max: 1, step: 0.25 };
    const raw = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / mag;
    const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
    return { max: Math.ceil(max / step - 1e-9) * step, step: step };
  }

  // The points of a /stats/history/ answer, without the newest one: that
  // interval is still in progress (docs/API.md section 10), and drawn as a
  // rate it would always look like a drop.
  function parseHistory(h) {
    const interval = isNum(h.interval_seconds) && h.interval_seconds > 0 ? h.interval_seconds : 10;
    const pts = [];
    for (const p of h.points) {
      const t = p && typeof p.t === 'string' ? Date.parse(p.t) : NaN;
      const n = p ? p.requests : NaN;
      if (Number.isFinite(t) && isNum(n) && n >= 0) pts.push({ t: t, n: n });
    }
    let total = 0;
    for (const p of pts) total += p.n;
    if (pts.length > 1) pts.pop();
    return { interval: interval, pts: pts, total: total };
  }

  function drawChart() {
    const box = $('chart');
    const h = state.history;
    if (!h) return;
    const { interval, pts, total } = parseHistory(h);
    if (pts.length === 0) {
      chartMessage('No history yet: the chart fills in as requests are counted.');
      return;
    }
    const W = box.clientWidth;
    const H = box.clientHeight;
    if (W < 60 || H < 60) return;
    const m = { l: 46, r: 10, t: 12, b: 24 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const stepMs = interval * 1000;

    // At most one bucket per 3 px: 24 h of 10 s points is 8640 of them.
    const per = Math.max(1, Math.ceil(pts.length / Math.max(1, Math.floor(pw / 3))));
    const buckets = [];
    for (let i = 0; i < pts.length; i += per) {
      const g = pts.slice(i, i + per);
      let sum = 0;
      for (const p of g) sum += p.n;
      buckets.push({ t: g[0].t, end: g[g.length - 1].t + stepMs, n: sum, rate: sum / (g.length * interval) });
    }
    const t0 = pts[0].t;
    const t1 = pts[pts.length - 1].t + stepMs;
    let peak = buckets[0];
    for (const b of buckets) if (b.rate > peak.rate) peak = b;
    const scale = niceScale(peak.rate);
    const x = (t) => m.l + ((t - t0) / (t1 - t0)) * pw;
    const y = (v) => m.t + ph - (v / scale.max) * ph;

    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, 'aria-hidden': 'true' });
    // Horizontal grid and the rate axis.
    for (let v = 0; v <= scale.max + scale.step / 2; v += scale.step) {
      const yy = Math.round(y(v)) + 0.5;
      svg('line', { x1: m.l, x2: W - m.r, y1: yy, y2: yy, class: v === 0 ? 'ax-base' : 'ax-grid' }, root);
      const label = svg('text', { x: m.l - 8, y: yy + 4, 'text-anchor': 'end', class: 'ax-label' }, root);
      label.textContent = rate(v);
    }
    // Time axis: local clock times on round minutes, about one per 70 px.
    const spanMin = (t1 - t0) / 60000;
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720];
    let tickMin = steps[steps.length - 1];
    for (const s of steps) {
      if (spanMin / s <= Math.max(2, pw / 70)) {
        tickMin = s;
        break;
      }
    }
    const tickMs = tickMin * 60000;
    const off = new Date(t0).getTimezoneOffset() * 60000;
    for (let t = Math.ceil((t0 - off) / tickMs) * tickMs + off; t <= t1; t += tickMs) {
      const xx = Math.round(x(t)) + 0.5;
      svg('line', { x1: xx, x2: xx, y1: m.t + ph, y2: m.t + ph + 4, class: 'ax-base' }, root);
      const label = svg('text', { x: xx, y: H - 6, 'text-anchor': 'middle', class: 'ax-label' }, root);
      label.textContent = hhmm(new Date(t));
    }
    // The series: each bucket's rate at its middle; a lone bucket is a
    // flat segment across its width.
    const coords = buckets.length === 1
      ? [[x(buckets[0].t), y(buckets[0].rate)], [x(buckets[0].end), y(buckets[0].rate)]]
      : buckets.map((b) => [x((b.t + b.end) / 2), y(b.rate)]);
    const line = coords.map((c, i) => (i ? 'L' : 'M') + c[0].toFixed(1) + ' ' + c[1].toFixed(1)).join(' ');
    const base = (m.t + ph).toFixed(1);
    const area = line + ' L' + coords[coords.length - 1][0].toFixed(1) + ' ' + base +
      ' L' + coords[0][0].toFixed(1) + ' ' + base + ' Z';
    svg('path', { d: area, class: 'series-area' }, root);
    svg('path', { d: line, class: 'series-line' }, root);

    // Hover: the bucket under the pointer, with its time and rate.
    const hover = svg('g', { class: 'hover' }, root);
    hover.setAttribute('visibility', 'hidden');
    const hLine = svg('line', { y1: m.t, y2: m.t + ph, class: 'hover-line' }, hover);
    const hDot = svg('circle', { r: 4, class: 'hover-dot' }, hover);
    const tip = svg('g', {}, hover);
    const tipBox = svg('rect', { rx: 4, ry: 4, class: 'tip-box' }, tip);
    const tipText = svg('text', { class: 'tip-text' }, tip);
    const hit = svg('rect', { x: m.l, y: m.t, width: pw, height: ph, fill: 'transparent' }, root);
    const move = (ev) => {
      const r = root.getBoundingClientRect();
      const px = ev.clientX - r.left;
      let best = 0;
      for (let i = 1; i < coords.length; i++) {
        if (Math.abs(coords[i][0] - px) < Math.abs(coords[best][0] - px)) best = i;
      }
      const b = buckets[Math.min(best, buckets.length - 1)];
      const [cx, cy] = coords[best];
      hLine.setAttribute('x1', cx);
      hLine.setAttribute('x2', cx);
      hDot.setAttribute('cx', cx);
      hDot.setAttribute('cy', cy);
      tipText.textContent = hhmm(new Date(b.t)) + (b.end - b.t > 60000 ? '–' + hhmm(new Date(b.end)) : '') +
        '  ·  ' + rate(b.rate) + ' req/s  ·  ' + int(b.n) + ' requests';
      hover.setAttribute('visibility', 'visible');
      const bb = tipText.getBBox();
      const tw = bb.width + 16;
      const tx = cx + 10 + tw > W - m.r ? cx - 10 - tw : cx + 10;
      tipText.setAttribute('x', tx + 8);
      tipText.setAttribute('y', m.t + 18);
      tipBox.setAttribute('x', tx);
      tipBox.setAttribute('y', m.t + 3);
      tipBox.setAttribute('width', tw);
      tipBox.setAttribute('height', 22);
    };
    hit.addEventListener('pointermove', move);
    hit.addEventListener('pointerdown', move);
    hit.addEventListener('pointerleave', () => hover.setAttribute('visibility', 'hidden'));
    box.replaceChildren(root);

    // The words a screen reader gets, shown under the chart too.
    const span = state.minutes >= 60 ? state.minutes / 60 + ' h' : state.minutes + ' min';
    const last = pts[pts.length - 1];
    let summary = int(total) + ' requests in the last ' + span + ' · peak ' + rate(peak.rate) + ' req/s at ' +
      hhmm(new Date(peak.t)) + ' · latest ' + rate(last.n / interval) + ' req/s';
    summary += per > 1 ? ' · averaged over ' + per * interval + ' s' : ' · ' + interval + ' s intervals';
    if (state.historyNote) summary += ' · ' + state.historyNote;
    setText($('chart-summary'), summary);
    box.setAttribute('aria-label', 'Request rate chart: ' + summary);
  }

  async function refreshHistory() {
    const seq = ++state.seq.history;
    const minutes = state.minutes;
    const res = await request('GET', '/stats/history/?minutes=' + minutes);
    if (seq !== state.seq.history) return;
    const b = res.body;
    if (res.status === 200 && b && Array.isArray(b.points)) {
      state.history = b;
      state.historyNote = '';
      drawChart();
      return;
    }
    if (res.status === 404) {
      state.history = null;
      chartMessage('Request-rate history is not available: this server has no /stats/history/.');
      return;
    }
    if (res.status === 403) {
      state.history = null;
      chartMessage('Request-rate history is turned off on this server (HISTORY_ENABLED=0).');
      return;
    }
    const why = res.status === 503 ? 'Redis is unreachable' : errText(res);
    if (state.history) {
      state.historyNote = 'not updated: ' + why;
      drawChart();
    } else {
      chartMessage('The request-rate history could not be read (' + why + ').');
    }
  }

  // ---- test runs -------------------------------------------------------------------

  function token() {
    return $('run-token').value;
  }

  function authHeaders() {
    const t = token();
    return t ? { Authorization: 'Bearer ' + t } : {};
  }

  function runMessage(text, isError) {
    const m = $('run-msg');
    m.classList.toggle('err', !!isError);
    setText(m, text);
  }

  function progressOf(run) {
    const n = isNum(run.requests) && run.requests > 0 ? run.requests : 1;
    const ok = isNum(run.succeeded) ? run.succeeded : 0;
    const bad = isNum(run.failed) ? run.failed : 0;
    return { max: n, value: Math.min(n, ok + bad) };
  }

  function statusClass(status) {
    return ['queued', 'running', 'done', 'failed', 'cancelled'].includes(status) ? status : 'other';
  }

  function setProgress(bar, run) {
    const p = progressOf(run);
    bar.max = p.max;
    bar.value = p.value;
    bar.classList.toggle('is-done', run.status === 'done');
    bar.classList.toggle('is-bad', run.status === 'failed');
    bar.classList.toggle('is-cancelled', run.status === 'cancelled');
  }

  function setBadge(badge, status) {
    badge.className = 'badge badge-' + statusClass(status);
    setText(badge, typeof status === 'string' ? status : '?');
  }

  function runLine(run) {
    const p = progressOf(run);
    const failed = isNum(run.failed) ? run.failed : 0;
    return int(p.value) + ' of ' + int(run.requests) + ' completed' +
      (failed ? ' · ' + int(failed) + ' failed' : '');
  }

  function runSpeed(run) {
    const parts = [];
    if (isNum(run.requests_per_second) && run.requests_per_second > 0) parts.push(rate(run.requests_per_second) + ' req/s');
    if (isNum(run.elapsed_seconds) && run.elapsed_seconds > 0) parts.push(seconds(run.elapsed_seconds));
    return parts.join(' · ');
  }

  function showCurrent(run) {
    $('current').hidden = false;
    setText($('current-id'), 'run ' + String(run.id));
    setBadge($('current-status'), run.status);
    setProgress($('current-progress'), run);
    const speed = runSpeed(run);
    setText($('current-line'), runLine(run) + (speed ? ' · ' + speed : ''));
  }

  function runItem(id) {
    let item = state.runItems.get(id);
    if (item) return item;
    item = { li: el('li', 'run') };
    item.li.dataset.runId = id;
    const head = el('div', 'run-head');
    item.title = el('span', 'run-title');
    item.badge = el('span', 'badge');
    item.time = el('span', 'run-time');
    head.append(item.title, item.badge, item.time);
    item.bar = document.createElement('progress');
    item.bar.setAttribute('aria-label', 'Progress of run ' + id);
    const meta = el('div', 'run-meta');
    item.line = el('span', '');
    item.speed = el('span', '');
    meta.append(item.line, item.speed);
    item.idLine = el('div', 'run-meta');
    item.idLine.appendChild(el('span', 'run-id mono', 'id ' + id));
    item.actions = el('div', 'run-actions');
    item.cancel = el('button', 'btn btn-small', 'Cancel');
    item.cancel.type = 'button';
    item.cancel.setAttribute('aria-label', 'Cancel run ' + id);
    item.cancel.addEventListener('click', () => spawn(cancelRun(id, item.cancel)));
    item.actions.appendChild(item.cancel);
    item.li.append(head, item.bar, meta, item.idLine, item.actions);
    state.runItems.set(id, item);
    return item;
  }

  function updateRunItem(run) {
    const item = runItem(String(run.id));
    setText(item.title, int(run.requests) + (run.requests === 1 ? ' request' : ' requests'));
    setBadge(item.badge, run.status);
    setText(item.time, when(run.created_at));
    setProgress(item.bar, run);
    setText(item.line, runLine(run));
    setText(item.speed, runSpeed(run));
    item.actions.hidden = !state.canCancel || ENDED.has(run.status) || typeof run.status !== 'string';
    return item;
  }

  function renderRuns(runs) {
    const list = $('runs');
    const seen = new Set();
    const items = [];
    for (const run of runs) {
      if (!run || run.id === undefined || run.id === null) continue;
      const item = updateRunItem(run);
      seen.add(String(run.id));
      items.push(item.li);
    }
    for (const [id, item] of state.runItems) {
      if (!seen.has(id)) {
        item.li.remove();
        state.runItems.delete(id);
      }
    }
    // Move only what is out of place: moving a node would take the
    // keyboard focus off its Cancel button.
    items.forEach((li, i) => {
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    $('runs-empty').hidden = items.length > 0;
    state.fast = runs.some((r) => r && !ENDED.has(r.status));
  }

  function setRunsDisabled(disabled, why) {
    $('run-start').disabled = disabled;
    $('run-n').disabled = disabled;
    $('run-token').disabled = disabled;
    if (disabled) runMessage(why, false);
  }

  async function refreshRuns() {
    const seq = ++state.seq.runs;
    const res = await request('GET', '/test/runs/?limit=' + RUNS_SHOWN);
    if (seq !== state.seq.runs) return;
    const b = res.body;
    if (res.status === 200 && b && Array.isArray(b.runs)) {
      if ($('run-start').disabled && !state.starting) setRunsDisabled(false);
      renderRuns(b.runs);
      return;
    }
    if (res.status === 403) {
      renderRuns([]);
      $('runs-empty').hidden = true;
      setRunsDisabled(true, 'Test runs are disabled on this server (TEST_ENABLED=0).');
      return;
    }
    state.fast = false;
    if (res.status === 503) {
      setText($('runs-empty'), 'Runs cannot be listed while Redis is unreachable.');
    } else {
      setText($('runs-empty'), 'Runs could not be listed (' + errText(res) + ').');
    }
    if (state.runItems.size === 0) $('runs-empty').hidden = false;
  }

  async function pollWatched() {
    clearTimeout(state.runTimer);
    state.runTimer = 0;
    const w = state.watched;
    if (!w || w.ended || document.hidden) return;
    const res = await request('GET', w.url);
    if (state.watched !== w) return;
    const run = res.body;
    if (res.status === 200 && run && typeof run === 'object') {
      showCurrent(run);
      if (state.runItems.has(w.id)) updateRunItem(run);
      if (ENDED.has(run.status)) {
        w.ended = true;
        runMessage('Run ' + run.status + '.', run.status === 'failed');
        spawn(refreshRuns());
        spawn(refreshStats().then(showOutcome));
        return;
      }
    } else if (res.status === 404) {
      w.ended = true;
      runMessage('The run is no longer known to the server.', true);
      return;
    } else {
      setText($('current-line'), 'Progress unavailable (' + errText(res) + '); retrying.');
    }
    if (!document.hidden) state.runTimer = setTimeout(() => spawn(pollWatched()), RUN_POLL_MS);
  }

  async function startRun(ev) {
    ev.preventDefault();
    const raw = $('run-n').value.trim();
    if (!/^[0-9]{1,12}$/.test(raw)) {
      runMessage('Enter a whole number of requests (1 or more).', true);
      $('run-n').focus();
      return;
    }
    const n = raw.replace(/^0+(?=[0-9])/, '');
    const t = token();
    if (t && !/^[\x21-\x7e]+$/.test(t)) {
      runMessage('A token holds printable ASCII characters only, without spaces.', true);
      $('run-token').focus();
      return;
    }
    state.starting = true;
    $('run-start').disabled = true;
    runMessage('Starting…', false);
    let res;
    try {
      res = await request('POST', '/test/' + n + '/', authHeaders());
    } finally {
      state.starting = false;
      $('run-start').disabled = false;
    }
    const b = res.body;
    if (res.status === 202 && b && typeof b.id === 'string') {
      const url = typeof b.status_url === 'string' && b.status_url.startsWith('/test/runs/')
        ? b.status_url
        : '/test/runs/' + encodeURIComponent(b.id) + '/';
      runMessage('Run started.', false);
      state.watched = { id: b.id, url: url, ended: false };
      showCurrent({ id: b.id, requests: b.requests, status: b.status, succeeded: 0, failed: 0 });
      spawn(refreshRuns());
      spawn(pollWatched());
      return;
    }
    if (res.status === 401) {
      runMessage('This server needs a bearer token (TEST_TOKEN): the one given is missing or wrong.', true);
      $('run-token').focus();
    } else if (res.status === 403) {
      setRunsDisabled(true, 'Test runs are disabled on this server (TEST_ENABLED=0).');
    } else if (res.status === 429) {
      const after = res.headers ? res.headers.get('Retry-After') : null;
      runMessage('Too many runs are queued or running' + (after ? '; try again in ' + after + ' s.' : '; try again shortly.'), true);
    } else {
      runMessage('The run was not started (' + errText(res) + ').', true);
    }
  }

  async function cancelRun(id, button) {
    button.disabled = true;
    const res = await request('DELETE', '/test/runs/' + encodeURIComponent(id) + '/', authHeaders());
    button.disabled = false;
    if (res.status === 200 || res.status === 202) {
      runMessage('Run cancelled.', false);
    } else if (res.status === 409) {
      runMessage('That run had already ended.', false);
    } else if (res.status === 405) {
      state.canCancel = false;
      runMessage('This server cannot cancel runs.', true);
    } else if (res.status === 401) {
      runMessage('Cancelling needs the bearer token (TEST_TOKEN): enter it above.', true);
      $('run-token').focus();
    } else {
      runMessage('The run was not cancelled (' + errText(res) + ').', true);
    }
    if (state.watched && state.watched.id === id && !state.watched.ended) spawn(pollWatched());
    await refreshRuns();
  }

  // ---- the polling loop ---------------------------------------------------------------

  async function tick() {
    clearTimeout(state.timer);
    state.timer = 0;
    if (document.hidden || state.busy) return;
    state.busy = true;
    try {
      const [outcome] = await Promise.all([refreshStats(), refreshHistory(), refreshRuns()]);
      if (outcome.kind !== 'stale') showOutcome(outcome);
    } finally {
      state.busy = false;
      if (!document.hidden) {
        state.timer = setTimeout(() => spawn(tick()), state.fast ? FAST_POLL_MS : POLL_MS);
      }
    }
  }

  function onVisibility() {
    if (document.hidden) {
      clearTimeout(state.timer);
      clearTimeout(state.runTimer);
      state.timer = state.runTimer = 0;
      setLive('', 'Paused while hidden');
      return;
    }
    spawn(tick());
    spawn(pollWatched());
  }

  function goTo(offset) {
    state.offset = Math.max(0, offset);
    spawn(refreshStats().then((o) => {
      if (o.kind !== 'stale') showOutcome(o);
    }));
  }

  function setRange(minutes) {
    state.minutes = minutes;
    for (const b of document.querySelectorAll('.seg-btn')) {
      b.setAttribute('aria-pressed', Number(b.dataset.minutes) === minutes ? 'true' : 'false');
    }
  }

  function init() {
    setRange(initialMinutes());
    for (const btn of document.querySelectorAll('.seg-btn')) {
      btn.addEventListener('click', () => {
        setRange(Number(btn.dataset.minutes));
        spawn(refreshHistory());
      });
    }
    const size = $('page-size');
    // A phone gets a shorter first page.
    if (window.matchMedia('(max-width: 560px)').matches) size.value = '10';
    state.limit = Number(size.value) || 25;
    size.addEventListener('change', () => {
      state.limit = Number(size.value) || 25;
      goTo(Math.floor(state.offset / state.limit) * state.limit);
    });
    $('prev').addEventListener('click', () => goTo(state.offset - state.limit));
    $('next').addEventListener('click', () => goTo(state.offset + state.limit));
    $('run-form').addEventListener('submit', (ev) => spawn(startRun(ev)));
    document.addEventListener('visibilitychange', onVisibility);

    let frame = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(drawChart);
    }).observe($('chart'));

    spawn(tick());
  }

  init();
})();
