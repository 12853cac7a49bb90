interface GaugeProps {
  label: string;
  /** 0–100. */
  percent: number;
  /** e.g. "12 / 100 used". */
  detail: string;
  /** e.g. "resets in 3 h". */
  note?: string;
}

/** A horizontal meter that turns amber at 80 % and red at 100 %. */
export function Gauge({ label, percent, detail, note }: GaugeProps) {
  const clamped = Math.max(0, Math.min(100, percent));
  const level = clamped >= 100 ? 'full' : clamped >= 80 ? 'high' : 'ok';
  return (
    <div className={`gauge gauge-${level}`}>
      <div className="gauge-head">
        <span className="gauge-label">{label}</span>
        <span className="gauge-percent">{Math.round(clamped * 100) / 100} %</span>
      </div>
      <div className="gauge-track" role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={clamped} aria-valuetext={`${detail}${note ? `, ${note}` : ''}`}>
        <div className="gauge-fill" style={{ width: `${clamped}%` }} />
      </div>
      <div className="gauge-detail">
        <span>{detail}</span>
        {note ? <span className="muted">{note}</span> : null}
      </div>
    </div>
  );
}
