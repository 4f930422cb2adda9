// foldscope's per-channel charts (viz.channels.channels_data, one per folded pair, in the
// <script id="charts"> JSON): each drawn as SVG when it is first shown (one inside a closed
// <details>: when that opens). Every value shows on hover (an SVG <title>); names are set as
// text, never as HTML. Works offline: no library. Each chart's place holds an empty <svg>, whose
// namespace the HTML parser sets, that the script fills.
(() => {
  const WIDTH = 900, PANEL = 140, GAP = 34, LEFT = 78, RIGHT = 12, TOP = 34, BOTTOM = 40;
  const make = (parent, name, attrs = {}, text) => {
    const e = document.createElementNS(parent.namespaceURI, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  };
  const fmt = v => String(Number(v.toPrecision(4)));
  const hover = (shape, s, i) => make(shape, 'title', {}, `channel ${s.channel[i]}\n${s.name}: ` +
    (s.low ? `${fmt(s.low[i])} to ${fmt(s.high[i])}` : fmt(s.high[i])));

  const draw = (box, chart) => {
    const top = chart.title ? TOP : 12;
    const height = top + chart.panels.length * (PANEL + GAP) - GAP + BOTTOM;
    const svg = box.querySelector('svg');
    svg.setAttribute('viewBox', `0 0 ${WIDTH} ${height}`);
    if (chart.title) make(svg, 'text', {x: WIDTH / 2, y: 20, 'text-anchor': 'middle', 'font-size': 13}, chart.title);
    const count = Math.max(1, ...chart.panels.flatMap(p => p.series.map(s => s.high.length)));
    const slot = (WIDTH - LEFT - RIGHT) / count;
    chart.panels.forEach((panel, k) => {
      const y0 = top + k * (PANEL + GAP);
      const values = panel.series.flatMap(s => [...s.high, ...(s.low || [])]).filter(v => v !== null);
      const low = Math.min(0, ...values), high = Math.max(0, ...values), span = high - low || 1;
      const y = v => y0 + PANEL * (high - v) / span;
      make(svg, 'rect', {x: LEFT, y: y0, width: WIDTH - LEFT - RIGHT, height: PANEL, fill: 'none', stroke: '#ddd'});
      make(svg, 'line', {x1: LEFT, x2: WIDTH - RIGHT, y1: y(0), y2: y(0), stroke: '#666', 'stroke-width': 0.6});
      for (const v of new Set([low, 0, high])) {
        make(svg, 'text', {x: LEFT - 4, y: y(v) + 4, 'text-anchor': 'end', fill: '#555'}, fmt(v));
      }
      make(svg, 'text', {x: 14, y: y0 + PANEL / 2, 'text-anchor': 'middle',
                         transform: `rotate(-90 14 ${y0 + PANEL / 2})`}, panel.label);
      panel.series.forEach((s, j) => {
        const g = make(svg, 'g', {'data-name': s.name, fill: s.color});
        if (panel.series.length > 1) {  // a legend above the panel
          make(svg, 'rect', {x: LEFT + j * 170, y: y0 - 14, width: 10, height: 10, fill: s.color});
          make(svg, 'text', {x: LEFT + j * 170 + 14, y: y0 - 5}, s.name);
        }
        if (s.kind === 'bar') {
          const width = slot * 0.8 / panel.series.length;
          s.high.forEach((v, i) => {
            const from = s.low ? s.low[i] : 0;
            if (v === null || from === null) return;
            const bar = make(g, 'rect', {x: LEFT + slot * (i + 0.1) + j * width, y: Math.min(y(v), y(from)),
                                         width, height: Math.max(1, Math.abs(y(v) - y(from)))});
            hover(bar, s, i);
          });
          return;
        }
        const x = i => LEFT + slot * (i + 0.5);  // a curve: the values sorted, the first and last channel named
        make(g, 'polyline', {points: s.high.map((v, i) => `${x(i)},${y(v)}`).join(' '), fill: 'none',
                             stroke: s.color, 'stroke-width': 1.5});
        s.high.forEach((v, i) => hover(make(g, 'circle', {cx: x(i), cy: y(v), r: 3, 'fill-opacity': 0}), s, i));
        for (const i of new Set([0, s.high.length - 1])) {
          if (i < 0) continue;
          make(g, 'text', {x: x(i) + (i ? -4 : 4), y: y(s.high[i]) - 6, 'text-anchor': i ? 'end' : 'start'},
               `ch ${s.channel[i]}: ${fmt(s.high[i])}`);
        }
      });
    });
    const bottom = top + chart.panels.length * (PANEL + GAP) - GAP;
    if (chart.panels.some(p => p.series.some(s => s.kind === 'bar'))) {  // channel numbers under the bars
      const step = Math.max(1, Math.ceil(count / 12));
      for (let i = 0; i < count; i += step) {
        make(svg, 'text', {x: LEFT + slot * (i + 0.5), y: bottom + 14, 'text-anchor': 'middle', fill: '#555'}, i);
      }
    }
    make(svg, 'text', {x: (LEFT + WIDTH - RIGHT) / 2, y: height - 6, 'text-anchor': 'middle'}, chart.axis);
  };

  const charts = JSON.parse(document.getElementById('charts').textContent);
  const show = box => {
    if (box.dataset.ready || box.closest('details:not([open])')) return;
    draw(box, charts[Number(box.id.slice('chart-'.length))]);
    box.dataset.ready = '1';
  };
  document.querySelectorAll('.chart').forEach(show);
  document.querySelectorAll('details').forEach(d => d.addEventListener('toggle', () => {
    if (d.open) d.querySelectorAll('.chart').forEach(show);
  }));
})();
