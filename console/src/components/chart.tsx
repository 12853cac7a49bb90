import { useEffect, useRef } from 'react';
import uPlot from 'uplot';

export interface ChartSeries {
  label: string;
  values: number[];
  color: string;
}

interface TimeChartProps {
  /** Accessible name, also the caption of the data table. */
  title: string;
  /** Unix seconds, ascending. */
  times: number[];
  series: ChartSeries[];
  bars?: boolean;
  height?: number;
  /** How a value reads in the table and the legend. */
  format?: (value: number) => string;
  /** Counts: the value axis shows whole numbers only. */
  integers?: boolean;
}

/** Whole-number steps for count axes. */
const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

const BAR_PATHS = uPlot.paths.bars!({ size: [0.8, 48] });

/**
 * A time-series chart (uPlot on a canvas) with its numbers in a table under "Data", so the
 * values are there for screen readers, keyboards and tests.
 */
export function TimeChart({ title, times, series, bars = false, height = 220, format = String, integers = false }: TimeChartProps) {
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = `${bars}|${integers}|${series.map((s) => s.label).join('|')}`;

  useEffect(() => {
    const element = container.current;
    if (!element) return undefined;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(integers ? 5 : 1, max * 1.1)] } },
      axes: [
        { stroke: '#52606d', grid: { stroke: '#eef1f4' } },
        { stroke: '#52606d', grid: { stroke: '#eef1f4' }, size: 60, ...(integers && { incrs: INTEGER_STEPS }), values: (_u, ticks) => ticks.map((tick) => format(tick)) },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          fill: bars ? `${s.color}cc` : `${s.color}22`,
          paths: bars ? BAR_PATHS : undefined,
          points: { show: !bars && times.length < 40 },
          value: (_u: uPlot, value: number | null) => (value === null ? '—' : format(value)),
        })),
      ],
    };
    plot.current = new uPlot(options, [times, ...series.map((s) => s.values)], element);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(200, element.clientWidth), height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Recreated only when the shape changes; new numbers go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData([times, ...series.map((s) => s.values)]);
  }, [times, series]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={container} className="chart-canvas" role="img" aria-label={title} />
      <details className="chart-data">
        <summary>Data</summary>
        <div className="table-scroll">
          <table>
            <caption>{title}</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                {series.map((s) => <th scope="col" key={s.label}>{s.label}</th>)}
              </tr>
            </thead>
            <tbody>
              {times.map((time, index) => (
                <tr key={time}>
                  <td>{new Date(time * 1000).toLocaleString()}</td>
                  {series.map((s) => <td key={s.label}>{format(s.values[index] ?? 0)}</td>)}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
