/**
 * Charts as plain SVG, built with htm: an interval drawn on a 0..max axis, and lines over
 * time. Every chart carries a text equivalent (aria-label and visible figures), and lines
 * differ by dash pattern as well as colour.
 */
import { html } from 'htm/preact';
import type { Interval } from './api.ts';

export const percent = (value: number, digits = 2) => `${(value * 100).toFixed(digits)}%`;

/** A point with its 95% interval on a horizontal axis from 0 to `max`. */
export function IntervalBar({ interval, max, label }: { interval: Interval; max: number; label: string }) {
  const width = 160;
  const x = (value: number) => 4 + (Math.min(Math.max(value, 0), max) / max) * (width - 8);
  return html`<svg class="interval" width=${width} height="18" role="img" aria-label=${label} viewBox=${`0 0 ${width} 18`}>
    <line class="axis" x1="4" x2=${width - 4} y1="14" y2="14"></line>
    <line class="range" x1=${x(interval.low95)} x2=${x(interval.high95)} y1="9" y2="9"></line>
    <line class="range" x1=${x(interval.low95)} x2=${x(interval.low95)} y1="5" y2="13"></line>
    <line class="range" x1=${x(interval.high95)} x2=${x(interval.high95)} y1="5" y2="13"></line>
    <circle class="point" cx=${x(interval.value)} cy="9" r="3"></circle>
  </svg>`;
}

export interface Series { readonly name: string; readonly points: ReadonlyArray<readonly [number, number]> }

const DASHES = ['', '6 3', '2 3', '8 3 2 3', '1 2'];

/**
 * Lines over time, each point marked (a line of one bucket is a dot): x in ms since the epoch,
 * over `span` when given (else the points' own), y in `unit` from 0 to at least `least`.
 */
export function LineChart({ series, label, unit = 'ms', span, least = 0.001 }: { series: readonly Series[]; label: string; unit?: string; span?: readonly [number, number]; least?: number }) {
  const width = 560;
  const height = 180;
  const left = 48;
  const bottom = 24;
  const all = series.flatMap((one) => one.points);
  if (all.length === 0) return html`<p class="muted">No requests yet.</p>`;
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const x0 = span?.[0] ?? Math.min(...xs);
  const x1 = Math.max(span?.[1] ?? Math.max(...xs), x0 + 1);
  const y1 = Math.max(...ys, least) * 1.1;
  const top = 20;
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (width - left - 8);
  const py = (y: number) => height - bottom - (y / y1) * (height - bottom - top);
  const ticks = [0, y1 / 2, y1];
  return html`<figure class="chart">
    <svg width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${label}>
      ${ticks.map((tick) => html`<g>
        <line class="grid" x1=${left} x2=${width - 8} y1=${py(tick)} y2=${py(tick)}></line>
        <text class="tick" x=${left - 4} y=${py(tick) + 4} text-anchor="end">${tick < 10 ? tick.toFixed(2) : tick.toFixed(0)}</text>
      </g>`)}
      <text class="tick" x="4" y="12">${unit}</text>
      <text class="tick" x=${left} y=${height - 6}>${new Date(x0).toLocaleTimeString()}</text>
      <text class="tick" x=${width - 8} y=${height - 6} text-anchor="end">${new Date(x1).toLocaleTimeString()}</text>
      ${series.map((one, index) => html`<polyline class=${`line line-${index % 5}`} stroke-dasharray=${DASHES[index % 5]}
        points=${one.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}></polyline>
        ${one.points.map(([x, y]) => html`<circle class=${`mark line-${index % 5}`} cx=${px(x).toFixed(1)} cy=${py(y).toFixed(1)} r="2.5"><title>${`${one.name}: ${y < 10 ? y.toFixed(2) : y.toFixed(0)} ${unit} at ${new Date(x).toLocaleTimeString()}`}</title></circle>`)}`)}
    </svg>
    <figcaption>
      ${series.map((one, index) => html`<span class="legend"><svg width="28" height="10" aria-hidden="true"><line class=${`line line-${index % 5}`} stroke-dasharray=${DASHES[index % 5]} x1="0" x2="28" y1="5" y2="5"></line></svg>${one.name}</span>`)}
    </figcaption>
  </figure>`;
}
