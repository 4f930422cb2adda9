/* foldscope's graph view: draws a scene (viz/interactive.py) as SVG panes side by side on one
 * layout. Drag to pan, scroll to zoom (every pane moves together), hover a node for its details and
 * its counterparts in the other pane, click to select it, Find a node by name ("/" focuses Find),
 * jump with the overview. The page (a Streamlit component) and the HTML report both call
 * foldscopeGraph(element, scene, hooks); hooks.onSelect(id) and hooks.onFind(name) tell the page.
 * Every text of a scene is set as text, never as markup: node names are user data. */

const FSG_SVG = 'http://www.w3.org/2000/svg';
const FSG_PAD_X = 8;
const FSG_MIN_ZOOM = 0.03;
const FSG_MAX_ZOOM = 4;
const FSG_FAR = 0.35;  // below this zoom the labels are too small to read: not drawn
const FSG_OPEN_ZOOM = 0.75;  // a large graph opens at least this large, so that its names read (9 px and more)

function fsgEl(tag, attrs, parent, svg) {
  const e = svg ? document.createElementNS(FSG_SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  }
  if (parent) parent.appendChild(e);
  return e;
}

function fsgText(tag, text, attrs, parent, svg) {
  const e = fsgEl(tag, attrs, parent, svg);
  e.textContent = text;
  return e;
}

/* The views on the page, for "/": the one last pointed at, else the first still on the page. */
const fsgViews = (globalThis.__foldscopeGraphViews = globalThis.__foldscopeGraphViews || {list: [], last: null});
if (!globalThis.__foldscopeGraphSlash) {
  globalThis.__foldscopeGraphSlash = true;
  document.addEventListener('keydown', (e) => {
    if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
    const target = (e.composedPath && e.composedPath()[0]) || e.target;
    const tag = target && target.tagName ? target.tagName.toLowerCase() : '';
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (target && target.isContentEditable)) return;
    fsgViews.list = fsgViews.list.filter((v) => v.root.isConnected);
    const view = fsgViews.last && fsgViews.last.root.isConnected ? fsgViews.last : fsgViews.list[0];
    if (!view) return;
    e.preventDefault();
    view.focusFind();
  });
}

function foldscopeGraph(host, scene, hooks) {
  let view = host.__foldscopeGraph;
  if (!view) {
    view = new FsgView(host);
    host.__foldscopeGraph = view;
    fsgViews.list.push(view);
  }
  view.hooks = hooks || {};
  view.show(scene);
  return view;
}

class FsgView {
  constructor(host) {
    this.root = fsgEl('div', {class: 'fsg', 'data-testid': 'foldscope-graph'}, host);
    this.root.view = this;
    const bar = fsgEl('div', {class: 'fsg-bar'}, this.root);
    this.find = fsgEl('input', {class: 'fsg-find', type: 'search', placeholder: 'Find a node (press /)',
                                'aria-label': 'Find a node', autocomplete: 'off', spellcheck: 'false'}, bar);
    this.names = fsgEl('datalist', {id: 'fsg-names-' + Math.random().toString(36).slice(2)}, bar);
    this.find.setAttribute('list', this.names.id);
    this.said = fsgEl('span', {class: 'fsg-said', 'aria-live': 'polite'}, bar);
    const fit = fsgText('button', 'Whole graph', {class: 'fsg-button', type: 'button'}, bar);
    const back = fsgText('button', 'Back to start', {class: 'fsg-button', type: 'button'}, bar);
    this.legend = fsgEl('div', {class: 'fsg-legend'}, this.root);
    this.body = fsgEl('div', {class: 'fsg-body'}, this.root);
    this.panesBox = fsgEl('div', {class: 'fsg-panes'}, this.body);
    this.overview = fsgEl('div', {class: 'fsg-overview', title: 'Overview: click or drag to move the view'}, this.body);
    this.tip = fsgEl('div', {class: 'fsg-tip', role: 'tooltip'}, this.root);
    this.tip.hidden = true;
    this.t = {k: 1, x: 0, y: 0};
    this.panes = [];
    this.structure = null;
    this.revision = null;
    this.hooks = {};
    this.find.addEventListener('keydown', (e) => { if (e.key === 'Enter') this.findTyped(this.find.value); });
    this.find.addEventListener('change', () => { if (this.find.value) this.findTyped(this.find.value); });
    fit.addEventListener('click', () => this.fitAll());
    back.addEventListener('click', () => this.start());
    this.root.addEventListener('pointerenter', () => { fsgViews.last = this; });
    new ResizeObserver(() => this.resized()).observe(this.panesBox);
  }

  focusFind() {
    this.find.focus();
    this.find.select();
  }

  show(scene) {
    this.root.scene = scene;  // what is drawn, for tests and benchmarks to read
    const structure = JSON.stringify({...scene, view: null});
    if (structure !== this.structure) {
      this.structure = structure;
      this.scene = scene;
      this.build();
      this.revision = null;
    }
    this.scene = scene;
    this.applyView(scene.view || {});
  }

  /* ---- drawing ------------------------------------------------------------------------------ */

  build() {
    const scene = this.scene;
    this.panesBox.textContent = '';
    this.panes = scene.panes.map((pane) => this.buildPane(pane));
    this.buildLegend();
    this.buildOverview();
    this.names.textContent = '';
    for (const name of Object.keys(scene.find)) fsgEl('option', {value: name}, this.names);
    this.fitText();
  }

  buildPane(pane) {
    const box = fsgEl('div', {class: 'fsg-pane', 'data-pane': pane.name}, this.panesBox);
    fsgText('div', pane.title, {class: 'fsg-title'}, box);
    const svg = fsgEl('svg', {class: 'fsg-svg', role: 'img', 'aria-label': pane.title}, box, true);
    const defs = fsgEl('defs', {}, svg, true);
    const arrow = fsgEl('marker', {id: 'fsg-arrow-' + Math.random().toString(36).slice(2), viewBox: '0 0 8 8',
                                   refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto'}, defs, true);
    fsgEl('path', {d: 'M0,0 L8,4 L0,8 z', class: 'fsg-arrowhead'}, arrow, true);
    const world = fsgEl('g', {class: 'fsg-world'}, svg, true);
    const groups = fsgEl('g', {class: 'fsg-groups'}, world, true);
    const edges = fsgEl('g', {class: 'fsg-edges'}, world, true);
    const nodes = fsgEl('g', {class: 'fsg-nodes'}, world, true);
    const rings = fsgEl('g', {class: 'fsg-rings'}, world, true);
    for (const g of pane.groups) {
      const [x, y, w, h] = g.box;
      const frame = fsgEl('g', {class: 'fsg-group', 'data-id': g.id}, groups, true);
      fsgEl('rect', {x, y, width: w, height: h, rx: 6}, frame, true);
      fsgText('text', g.label, {x: x + 8, y: y + 15, class: 'fsg-group-label'}, frame, true);
    }
    for (const points of pane.edges) {
      fsgEl('path', {d: 'M' + points.map((p) => p[0] + ',' + p[1]).join(' L'),
                     'marker-end': 'url(#' + arrow.id + ')'}, edges, true);
    }
    const byId = new Map();
    for (const n of pane.nodes) {
      const [x, y, w, h] = n.box;
      const cls = 'fsg-node' + (n.ghost ? ' fsg-ghost' : '') + (n.block ? ' fsg-block' : '');
      const g = fsgEl('g', {class: cls, 'data-id': n.id, transform: `translate(${x},${y})`}, nodes, true);
      const rect = fsgEl('rect', {width: w, height: h, rx: n.block ? 7 : 3, fill: n.fill, stroke: n.stroke,
                                  'stroke-width': n.width, 'stroke-dasharray': n.dash ? '5 3' : null}, g, true);
      let top = 5;
      for (const [text, size] of n.lines) {
        const line = fsgText('text', text, {x: w / 2, y: top + size * 1.3 / 2, 'font-size': size,
                                            class: size >= 12 ? 'fsg-name' : 'fsg-sub'}, g, true);
        if (n.ink) line.style.fill = n.ink;  // the ink that reads on this face (a style: the sheet's rule yields)
        top += size * 1.3;
        line.dataset.room = String(w - 2 * FSG_PAD_X);
      }
      const entry = byId.get(n.id);
      if (!entry || entry.node.ghost) byId.set(n.id, {g, rect, node: n});
    }
    const view = {name: pane.name, box, svg, world, nodes, rings, byId, data: pane};
    this.listen(view);
    return view;
  }

  /* A label wider than its box (the browser's font is not the one the box was measured in) is
   * squeezed into it: no label ever leaves its box. */
  fitText() {
    const texts = [];
    for (const pane of this.panes) texts.push(...pane.svg.querySelectorAll('.fsg-node text'));
    const lengths = texts.map((t) => t.getComputedTextLength());
    texts.forEach((t, i) => {
      const room = Number(t.dataset.room);
      if (lengths[i] > room) {
        t.setAttribute('textLength', room);
        t.setAttribute('lengthAdjust', 'spacingAndGlyphs');
      }
    });
  }

  buildLegend() {
    const scene = this.scene;
    this.legend.textContent = '';
    for (const item of scene.legend) {
      const entry = fsgEl('span', {class: 'fsg-key'}, this.legend);
      const swatch = fsgEl('span', {class: 'fsg-swatch'}, entry);
      swatch.style.background = item.fill;
      swatch.style.borderColor = item.stroke;
      swatch.style.borderStyle = item.dash ? 'dashed' : 'solid';
      fsgText('span', item.label, {}, entry);
    }
    if (scene.scale) {
      const bar = fsgEl('span', {class: 'fsg-scale'}, this.legend);
      fsgText('span', scene.scale.title + ':', {}, bar);
      fsgText('span', String(scene.scale.low), {}, bar);
      const ramp = fsgEl('span', {class: 'fsg-ramp'}, bar);
      ramp.style.background = 'linear-gradient(to right, ' +
        scene.scale.stops.map(([t, c]) => `${c} ${(t * 100).toFixed(1)}%`).join(', ') + ')';
      fsgText('span', String(scene.scale.high), {}, bar);
    }
  }

  buildOverview() {
    const [W, H] = this.scene.size;
    this.overview.textContent = '';
    const svg = fsgEl('svg', {viewBox: `0 0 ${Math.max(W, 1)} ${Math.max(H, 1)}`, preserveAspectRatio: 'none'},
                      this.overview, true);
    const pane = this.scene.panes[0];
    for (const n of pane.nodes) {
      const [x, y, w, h] = n.box;
      fsgEl('rect', {x, y, width: w, height: h, fill: n.fill === 'transparent' ? 'none' : n.fill}, svg, true);
    }
    this.marks = fsgEl('g', {class: 'fsg-marks'}, svg, true);
    this.window = fsgEl('rect', {class: 'fsg-window', 'vector-effect': 'non-scaling-stroke'}, svg, true);
    const jump = (e) => {
      const r = svg.getBoundingClientRect();
      const wx = (e.clientX - r.left) / r.width * W, wy = (e.clientY - r.top) / r.height * H;
      this.centerOn(wx, wy);
    };
    svg.addEventListener('pointerdown', (e) => { svg.setPointerCapture(e.pointerId); jump(e); });
    svg.addEventListener('pointermove', (e) => { if (e.buttons & 1) jump(e); });
  }

  /* ---- the view: zoom, pan, what it opens on ----------------------------------------------- */

  paneSize() {
    const svg = this.panes.length ? this.panes[0].svg : null;
    const r = svg ? svg.getBoundingClientRect() : {width: 600, height: 400};
    return [Math.max(r.width, 50), Math.max(r.height, 50)];
  }

  /* The body's height: the graph at its opening zoom, between a small graph's and the cap. */
  sizeBody() {
    const [W, H] = this.scene.size;
    const width = this.panesBox.getBoundingClientRect().width / Math.max(this.scene.panes.length, 1);
    const k = Math.max(Math.min(1, (width - 24) / Math.max(W, 1)), FSG_OPEN_ZOOM);
    const height = Math.min(Math.max(H * k + 24, 180), this.maxHeight());
    this.body.style.height = height + 'px';
    this.overview.hidden = H * k + 24 <= height && W * k + 24 <= width;  // nothing to jump to
  }

  maxHeight() {
    return Number(getComputedStyle(this.root).getPropertyValue('--fsg-height')) || 680;
  }

  opening() {
    const [W, H] = this.scene.size;
    const [pw, ph] = this.paneSize();
    const k = Math.max(Math.min(1, (pw - 24) / Math.max(W, 1)), FSG_OPEN_ZOOM);
    const center = this.scene.view && this.scene.view.center;
    const at = center ? this.boxOf(center) : null;
    if (at) {
      const [x, y, w, h] = at;
      let ty = ph / 2 - k * (y + h / 2);
      if (H * k > ph) ty = Math.max(Math.min(ty, 8), ph - 8 - H * k);  // no empty band above or below a tall graph
      return {k, x: pw / 2 - k * (x + w / 2), y: ty};
    }
    return {k, x: W * k < pw ? (pw - W * k) / 2 : pw / 2 - k * W / 2, y: H * k < ph ? (ph - H * k) / 2 : 8};
  }

  start() {
    this.setTransform(this.opening());
  }

  fitAll() {
    const [W, H] = this.scene.size;
    const [pw, ph] = this.paneSize();
    const k = Math.max(Math.min((pw - 16) / Math.max(W, 1), (ph - 16) / Math.max(H, 1), FSG_MAX_ZOOM), FSG_MIN_ZOOM);
    this.setTransform({k, x: (pw - W * k) / 2, y: (ph - H * k) / 2});
  }

  centerOn(wx, wy) {
    const [pw, ph] = this.paneSize();
    this.setTransform({k: this.t.k, x: pw / 2 - this.t.k * wx, y: ph / 2 - this.t.k * wy});
  }

  setTransform(t) {
    this.t = t;
    const value = `translate(${t.x},${t.y}) scale(${t.k})`;
    for (const pane of this.panes) pane.world.setAttribute('transform', value);
    this.root.classList.toggle('fsg-far', t.k < FSG_FAR);
    const [pw, ph] = this.paneSize();
    if (this.window) {
      this.window.setAttribute('x', -t.x / t.k);
      this.window.setAttribute('y', -t.y / t.k);
      this.window.setAttribute('width', pw / t.k);
      this.window.setAttribute('height', ph / t.k);
    }
  }

  resized() {
    if (!this.scene) return;
    const before = this.paneSize();
    this.sizeBody();
    const after = this.paneSize();
    // keep the same world point in the middle
    const t = this.t;
    this.setTransform({k: t.k, x: t.x + (after[0] - before[0]) / 2, y: t.y + (after[1] - before[1]) / 2});
  }

  boxOf(id) {
    for (const pane of this.panes) {
      const entry = pane.byId.get(id);
      if (entry) return entry.node.box;
    }
    return null;
  }

  applyView(view) {
    this.sizeBody();
    if (view.revision !== this.revision) {
      this.revision = view.revision;
      this.start();
    } else {
      this.setTransform(this.t);
    }
    this.select(view.selected || null, false);
    this.ring(view.found || null, view.rings || []);
  }

  /* ---- marks: selection, rings, counterparts ------------------------------------------------ */

  select(id, tell) {
    this.selected = id;
    for (const pane of this.panes) {
      for (const e of pane.nodes.querySelectorAll('.fsg-selected')) e.classList.remove('fsg-selected');
      for (const e of pane.rings.querySelectorAll('.fsg-selmark')) e.remove();
      const entry = id === null ? null : pane.byId.get(id);
      if (!entry) continue;
      entry.g.classList.add('fsg-selected');
      const [x, y, w, h] = entry.node.box;
      fsgEl('rect', {class: 'fsg-selmark', x: x - 3.5, y: y - 3.5, width: w + 7, height: h + 7, rx: 6, 'data-id': id},
            pane.rings, true);
    }
    this.mark(id);
    if (tell && this.hooks.onSelect) this.hooks.onSelect(id);
  }

  ring(found, rings) {
    this.found = found;
    this.rings = rings;
    for (const pane of this.panes) {
      for (const e of pane.rings.querySelectorAll('.fsg-ring')) e.remove();
      const ids = [...(found === null ? [] : [found]), ...rings.filter(([p]) => p === pane.name).map(([, n]) => n)];
      for (const id of ids) {
        const entry = pane.byId.get(id);
        if (!entry) continue;
        const [x, y, w, h] = entry.node.box;
        pane.nodes.appendChild(entry.g);  // drawn on top of its neighbours
        fsgEl('rect', {class: 'fsg-ring', x: x - 6, y: y - 6, width: w + 12, height: h + 12, rx: 8,
                       'data-id': id}, pane.rings, true);
      }
    }
  }

  /* The overview's marks: where the selection and the rings are. */
  mark(id) {
    if (!this.marks) return;
    this.marks.textContent = '';
    for (const target of [id, this.found, ...(this.rings || []).map(([, n]) => n)]) {
      const box = target ? this.boxOf(target) : null;
      if (!box) continue;
      const [x, y, w, h] = box;
      fsgEl('rect', {x: x - 4, y: y - 4, width: w + 8, height: h + 8, class: 'fsg-mark',
                     'vector-effect': 'non-scaling-stroke'}, this.marks, true);
    }
  }

  counterparts(paneName, id) {
    const links = (this.scene.links || {})[paneName] || {};
    return links[id] || [id];
  }

  highlight(paneName, id) {
    for (const pane of this.panes) {
      for (const e of pane.nodes.querySelectorAll('.fsg-linked, .fsg-hover')) {
        e.classList.remove('fsg-linked', 'fsg-hover');
      }
    }
    if (id === null) return;
    const others = this.counterparts(paneName, id);
    for (const pane of this.panes) {
      if (pane.name === paneName) {
        const entry = pane.byId.get(id);
        if (entry) entry.g.classList.add('fsg-hover');
      } else {
        for (const other of others) {
          const entry = pane.byId.get(other);
          if (entry) entry.g.classList.add('fsg-linked');
        }
      }
    }
  }

  /* ---- pointer ------------------------------------------------------------------------------- */

  listen(pane) {
    const svg = pane.svg;
    let drag = null;
    const nodeAt = (e) => {
      const g = e.target && e.target.closest ? e.target.closest('.fsg-node') : null;
      return g ? g.getAttribute('data-id') : null;
    };
    svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      const px = e.clientX - r.left, py = e.clientY - r.top;
      const t = this.t;
      const k = Math.min(Math.max(t.k * Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015)), FSG_MIN_ZOOM), FSG_MAX_ZOOM);
      this.setTransform({k, x: px - (px - t.x) * k / t.k, y: py - (py - t.y) * k / t.k});
    }, {passive: false});
    svg.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      drag = {x: e.clientX, y: e.clientY, t: {...this.t}, node: nodeAt(e), moved: false};
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener('pointermove', (e) => {
      if (drag) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (drag.moved || Math.abs(dx) + Math.abs(dy) > 4) {
          drag.moved = true;
          this.hideTip();
          this.setTransform({k: drag.t.k, x: drag.t.x + dx, y: drag.t.y + dy});
        }
        return;
      }
      const id = nodeAt(e);
      if (id === null) { this.hideTip(); this.highlight(null, null); return; }
      this.showTip(pane, id, e);
    });
    svg.addEventListener('pointerup', (e) => {
      if (drag && !drag.moved && drag.node !== null) this.select(drag.node, true);
      drag = null;
    });
    svg.addEventListener('pointerleave', () => { if (!drag) { this.hideTip(); this.highlight(null, null); } });
  }

  showTip(pane, id, e) {
    const entry = pane.byId.get(id);
    if (!entry) return;
    this.highlight(pane.name, id);
    if (this.tipFor !== pane.name + '\u0000' + id) {
      this.tipFor = pane.name + '\u0000' + id;
      this.tip.textContent = '';
      entry.node.hover.forEach((line, i) => fsgText('div', line, {class: i ? 'fsg-tip-line' : 'fsg-tip-head'}, this.tip));
      const others = this.counterparts(pane.name, id).filter((o) => o !== id);
      if (others.length) fsgText('div', 'in the other pane: ' + others.join(', '), {class: 'fsg-tip-link'}, this.tip);
    }
    this.tip.hidden = false;
    const host = this.root.getBoundingClientRect();
    const tw = this.tip.offsetWidth, th = this.tip.offsetHeight;
    let x = e.clientX - host.left + 16, y = e.clientY - host.top + 16;
    if (x + tw > host.width) x = Math.max(4, e.clientX - host.left - tw - 16);
    if (y + th > host.height) y = Math.max(4, e.clientY - host.top - th - 16);
    this.tip.style.left = x + 'px';
    this.tip.style.top = y + 'px';
  }

  hideTip() {
    this.tip.hidden = true;
    this.tipFor = null;
  }

  /* ---- Find ---------------------------------------------------------------------------------- */

  findTyped(typed) {
    typed = typed.trim();
    if (!typed) return;
    const names = Object.keys(this.scene.find);
    const lower = typed.toLowerCase();
    const name = names.includes(typed) ? typed : names.find((n) => n.toLowerCase() === lower) ||
      names.find((n) => n.toLowerCase().includes(lower));
    if (name === undefined) {
      this.said.textContent = 'No node named "' + typed + '".';
      return;
    }
    const drawn = this.scene.find[name];
    const box = this.boxOf(drawn);
    this.ring(drawn, this.rings || []);
    this.mark(this.selected);
    if (box) this.centerOn(box[0] + box[2] / 2, box[1] + box[3] / 2);
    this.said.textContent = drawn === name ? 'Found ' + name + '.' : 'Found ' + name + ', inside ' + drawn + '.';
    if (this.hooks.onFind) this.hooks.onFind(name);
  }
}
