// prefrl's labeling page: shows the next pending query's two clips looping in step, sends the
// person's answer, and shows the run's progress. API: docs/labeling.md.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  const clientId = sessionStorage.getItem('prefrl-client') ||
    (() => { const c = Math.random().toString(36).slice(2) + Date.now().toString(36); sessionStorage.setItem('prefrl-client', c); return c; })();
  const nameBox = $('labeler');
  nameBox.value = localStorage.getItem('prefrl-labeler') || '';

  let query = null;          // the query shown: {id, left, right}
  let sheets = null;         // {left: Image, right: Image} of the query shown
  let t0 = performance.now();
  let busy = false;          // a request that changes the query is in flight
  let undoQueued = 0;        // undos asked for (key u) while busy: done, in turn, once it is over
  let pollTimer = null;

  const headers = (json) => {
    const h = {};
    if (token) h['X-Prefrl-Token'] = token;
    if (json) h['Content-Type'] = 'application/json';
    return h;
  };
  async function api(method, path, body) {
    const res = await fetch(path, { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (e) { data = { error: `HTTP ${res.status}` }; }
    if (!res.ok) throw new Error(data && data.error ? data.error : `HTTP ${res.status}`);
    return data;
  }
  const labeler = () => nameBox.value.trim();
  function say(text, error) {
    const m = $('message');
    m.textContent = text || '\u00a0';
    m.classList.toggle('error', !!error);
  }
  function counters(d) {
    if (d.your_labels !== undefined) $('your-labels').textContent = d.your_labels;
    if (d.labels !== undefined) $('all-labels').textContent = d.labels;
    if (d.pending !== undefined) $('pending').textContent = d.pending;
  }
  function setButtons() {
    const ready = !!query && !!sheets && !busy && labeler() !== '';
    for (const b of document.querySelectorAll('.answers button[data-choice]')) b.disabled = !ready;
    $('btn-undo').disabled = labeler() === '';  // while busy, an undo is queued
  }
  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error('could not load clip ' + url));
      img.src = url + (token ? `?token=${encodeURIComponent(token)}` : '');
    });
  }

  // ---- Playback: one clock for both clips ----
  function drawClip(canvas, clip, img, frame) {
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    const col = frame % clip.columns, row = Math.floor(frame / clip.columns);
    ctx.drawImage(img, col * clip.frame_width, row * clip.frame_height, clip.frame_width, clip.frame_height,
                  0, 0, canvas.width, canvas.height);
    if (clip.absorbing[frame]) {
      ctx.fillStyle = 'rgba(255,255,255,0.9)';
      ctx.font = 'bold 22px system-ui, sans-serif';
      ctx.textAlign = 'center';
      ctx.fillText('episode ended', canvas.width / 2, 34);
    }
    // progress bar along the bottom: where in the clip we are
    ctx.fillStyle = 'rgba(255,255,255,0.65)';
    ctx.fillRect(0, canvas.height - 4, canvas.width * (frame + 1) / clip.frames, 4);
  }
  function placeholder(canvas, text) {
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#111';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = '#9aa3b2';
    ctx.font = '18px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText(text, canvas.width / 2, canvas.height / 2);
  }
  function tick(now) {
    if (query && sheets) {
      const fps = query.left.fps;
      const frames = Math.min(query.left.frames, query.right.frames);
      const frame = Math.floor(((now - t0) / 1000) * fps) % frames;
      drawClip($('left'), query.left, sheets.left, frame);
      drawClip($('right'), query.right, sheets.right, frame);
    }
    requestAnimationFrame(tick);
  }

  // ---- Queries ----
  function show(q, imgs) {
    query = q;
    sheets = imgs;
    t0 = performance.now();
    document.body.dataset.queryId = q ? String(q.id) : '';
    $('query-id').textContent = q ? `#${q.id}` : '–';
    if (!q) {
      placeholder($('left'), 'no pending query');
      placeholder($('right'), 'waiting for the trainer…');
    }
    setButtons();
  }
  async function next() {
    clearTimeout(pollTimer);
    if (labeler() === '') {
      show(null, null);
      say('Enter your name (top right) to start labeling.');
      return;
    }
    busy = true; setButtons();
    try {
      const d = await api('GET', `/api/query/next?labeler=${encodeURIComponent(labeler())}&client=${encodeURIComponent(clientId)}`);
      counters(d);
      if (!d.query) {
        show(null, null);
        pollTimer = setTimeout(next, 1000);
      } else if (!query || query.id !== d.query.id || !sheets) {
        const [l, r] = await Promise.all([loadImage(d.query.left.url), loadImage(d.query.right.url)]);
        show(d.query, { left: l, right: r });
      }
    } catch (e) {
      say(e.message, true);
      pollTimer = setTimeout(next, 2000);
    } finally {
      busy = false; setButtons();
    }
    if (undoQueued > 0) { undoQueued -= 1; await undo(); }
  }
  async function answer(choice) {
    if (!query || !sheets || busy || labeler() === '') return;
    const btn = document.querySelector(`button[data-choice="${choice}"]`);
    btn.classList.add('flash'); setTimeout(() => btn.classList.remove('flash'), 150);
    busy = true; setButtons();
    try {
      const d = await api('POST', '/api/label', { query_id: query.id, choice, labeler: labeler(), client: clientId });
      counters(d);
      say(`Saved: ${ { left: 'left is better', right: 'right is better', equal: 'equal', skip: "can't tell" }[choice] } (query #${d.query_id}). Press u to undo.`);
      query = null; sheets = null;
    } catch (e) {
      say(e.message, true);
      query = null; sheets = null;
    } finally {
      busy = false;
    }
    await next();
  }
  async function undo() {
    if (labeler() === '') return;
    if (busy) {  // the next clip is loading or an answer is on its way: undo as soon as it is done
      undoQueued += 1;
      say(undoQueued === 1 ? 'Undo queued: your last answer is undone as soon as the next clip has loaded.'
                           : `${undoQueued} undos queued: done as soon as the next clip has loaded.`);
      return;
    }
    busy = true; setButtons();
    try {
      const d = await api('POST', '/api/undo', { labeler: labeler(), client: clientId });
      counters(d);
      say(`Undone: your answer to query #${d.query_id}. It is shown again.`);
      query = null; sheets = null;
    } catch (e) {
      say(e.message, true);
    } finally {
      busy = false;
    }
    await next();
  }

  // ---- Live panel ----
  const fmt = (x, digits) => (x === null || x === undefined || Number.isNaN(x)) ? '–' : Number(x).toFixed(digits);
  function chart(points) {
    const c = $('chart'), ctx = c.getContext('2d');
    ctx.clearRect(0, 0, c.width, c.height);
    if (!points || points.length < 2) {
      ctx.fillStyle = '#9aa3b2'; ctx.font = '13px system-ui, sans-serif'; ctx.textAlign = 'center';
      ctx.fillText('no episodes yet', c.width / 2, c.height / 2);
      return;
    }
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const X = (x) => 36 + (c.width - 44) * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
    const Y = (y) => c.height - 18 - (c.height - 30) * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
    ctx.strokeStyle = '#dde1e8'; ctx.beginPath(); ctx.moveTo(36, 8); ctx.lineTo(36, c.height - 18); ctx.lineTo(c.width - 8, c.height - 18); ctx.stroke();
    ctx.fillStyle = '#6b7280'; ctx.font = '11px system-ui, sans-serif'; ctx.textAlign = 'right';
    ctx.fillText(y1.toFixed(0), 32, 14); ctx.fillText(y0.toFixed(0), 32, c.height - 18);
    ctx.textAlign = 'left'; ctx.fillText(`${x0}`, 36, c.height - 4); ctx.textAlign = 'right'; ctx.fillText(`${x1} steps`, c.width - 8, c.height - 4);
    ctx.strokeStyle = '#2f6fec'; ctx.lineWidth = 2; ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
  }
  async function status() {
    try {
      const d = await api('GET', `/api/status${labeler() ? `?labeler=${encodeURIComponent(labeler())}` : ''}`);
      counters(d);
      $('run-name').textContent = `${d.env} · ${d.run_name}`;
      const r = d.run || {};
      let phase = r.phase || 'labeling only (no training attached)';
      if (r.phase === 'waiting') phase = `Waiting for labels: ${r.labels_have} of ${r.labels_needed} given. Training goes on when they are in.`;
      else if (r.phase === 'training') phase = 'Training on your labels.';
      else if (r.phase === 'finished') phase = 'Training finished. Thank you!';
      $('phase').textContent = phase;
      $('steps').textContent = r.step !== undefined ? `${r.step} / ${r.total_steps}` : '–';
      $('labels-used').textContent = r.labels_used !== undefined ? `${r.labels_used} / ${r.label_budget}` : '–';
      $('val-acc').textContent = fmt(r.val_accuracy, 3);
      $('return').textContent = fmt(r.recent_return, 1);
      chart(r.return_curve);
    } catch (e) {
      $('phase').textContent = `cannot reach prefrl: ${e.message}`;
    }
  }

  // ---- Input ----
  document.querySelectorAll('.answers button[data-choice]').forEach((b) => b.addEventListener('click', () => answer(b.dataset.choice)));
  $('btn-undo').addEventListener('click', undo);
  document.addEventListener('keydown', (ev) => {
    if (ev.target === nameBox || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const key = { ArrowLeft: 'left', ArrowRight: 'right', '=': 'equal', ' ': 'skip' }[ev.key];
    if (key) { ev.preventDefault(); answer(key); } else if (ev.key === 'u' || ev.key === 'U') { ev.preventDefault(); undo(); }
  });
  nameBox.addEventListener('change', () => {
    localStorage.setItem('prefrl-labeler', labeler());
    say(labeler() ? `Labeling as ${labeler()}.` : 'Enter your name to start labeling.');
    query = null; sheets = null;
    next(); status();
  });
  nameBox.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') nameBox.blur(); });

  show(null, null);
  requestAnimationFrame(tick);
  status();
  setInterval(status, 2000);
  next();
})();
