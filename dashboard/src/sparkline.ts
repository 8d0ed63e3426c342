/** A small line chart of recent values as inline SVG, drawn with DOM calls only: no library,
 * no inline style (the page's CSP forbids style attributes; colours come from style.css). */

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 120;
const HEIGHT = 36;
const PAD = 3;

export interface Point {
  time: number;
  value: number;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

/** `points` oldest first; `label` names the chart for screen readers (role img). */
export function sparkline(points: readonly Point[], label: string): SVGSVGElement {
  const chart = svg('svg', {
    class: 'sparkline',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: 'none',
    role: 'img',
    'aria-label': label,
  });
  if (points.length === 0) return chart;
  const first = points[0]!.time;
  const span = Math.max(1, points[points.length - 1]!.time - first);
  let low = Math.min(...points.map((p) => p.value));
  let high = Math.max(...points.map((p) => p.value));
  if (high - low < 1e-9) {
    low -= 1;
    high += 1;
  }
  const x = (p: Point): number => PAD + ((p.time - first) / span) * (WIDTH - 2 * PAD);
  const y = (p: Point): number => HEIGHT - PAD - ((p.value - low) / (high - low)) * (HEIGHT - 2 * PAD);
  const coords = points.map((p) => `${x(p).toFixed(1)},${y(p).toFixed(1)}`).join(' ');
  // One reading is a level line: a dot would be stretched by the free aspect ratio.
  const line = points.length > 1 ? coords : `${PAD},${y(points[0]!).toFixed(1)} ${WIDTH - PAD},${y(points[0]!).toFixed(1)}`;
  chart.append(svg('polyline', { points: line, 'vector-effect': 'non-scaling-stroke' }));
  return chart;
}
