/**
 * Exact decimal arithmetic on strings, with BigInt: prices, quantities and money never
 * become binary floats (ARCHITECTURE invariant 5). A `Dec` is `units * 10^-scale`.
 */

export interface Dec {
  readonly units: bigint;
  readonly scale: number;
}

const DECIMAL_RE = /^(-)?(\d+)(?:\.(\d+))?$/;

/** Parse "123.45", "-0.5", "7"; `null` for anything else (exponents, blanks, "1.", ".5"). */
export function parseDec(text: string): Dec | null {
  const m = DECIMAL_RE.exec(text.trim());
  if (m === null) return null;
  const [, sign, whole, frac = ""] = m;
  const units = BigInt(`${whole}${frac}`);
  return { units: sign ? -units : units, scale: frac.length };
}

const SERVER_RE = /^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$/;

/** A decimal as a server may print it, exponent included (Python's str(Decimal("0E-8"))). */
export function parseServerDec(text: string): Dec | null {
  const m = SERVER_RE.exec(text.trim());
  if (m === null) return parseDec(text);
  const base = parseDec(m[1]!);
  if (base === null) return null;
  const exp = Number.parseInt(m[2]!, 10);
  return exp >= 0
    ? { units: base.units * 10n ** BigInt(exp), scale: base.scale }
    : { units: base.units, scale: base.scale - exp };
}

/** Server text shown canonically ("0E-8" -> "0", "100.00000000" -> "100"); else as it came. */
export function display(text: string, minPlaces = 0): string {
  const d = parseServerDec(text);
  return d === null ? text : format(d, minPlaces);
}

/** Like `parseDec`, but throws: for values the server sent, which are always decimals. */
export function dec(text: string): Dec {
  const d = parseDec(text);
  if (d === null) throw new Error(`not a decimal: ${JSON.stringify(text)}`);
  return d;
}

export function fromInt(n: bigint | number): Dec {
  return { units: BigInt(n), scale: 0 };
}

function rescale(a: Dec, scale: number): bigint {
  return a.units * 10n ** BigInt(scale - a.scale);
}

export function add(a: Dec, b: Dec): Dec {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

export function sub(a: Dec, b: Dec): Dec {
  return add(a, { units: -b.units, scale: b.scale });
}

export function mul(a: Dec, b: Dec): Dec {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

/** a * bps / 10 000, exactly. */
export function bps(a: Dec, basisPoints: number): Dec {
  return { units: a.units * BigInt(basisPoints), scale: a.scale + 4 };
}

export function cmp(a: Dec, b: Dec): -1 | 0 | 1 {
  const scale = Math.max(a.scale, b.scale);
  const x = rescale(a, scale);
  const y = rescale(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isZero(a: Dec): boolean {
  return a.units === 0n;
}

export function isPositive(a: Dec): boolean {
  return a.units > 0n;
}

/** How many whole `step`s make `a`, or `null` when `a` is not a multiple of `step`. */
export function stepsOf(a: Dec, step: Dec): bigint | null {
  if (step.units <= 0n) throw new Error("step must be positive");
  const scale = Math.max(a.scale, step.scale);
  const x = rescale(a, scale);
  const s = rescale(step, scale);
  return x % s === 0n ? x / s : null;
}

/** `n` steps of `step` (e.g. ticks back to a price). */
export function timesInt(step: Dec, n: bigint): Dec {
  return { units: step.units * n, scale: step.scale };
}

/** Nearest multiples of `step` at or below and at or above `a`. */
export function roundToStep(a: Dec, step: Dec, mode: "down" | "up"): Dec {
  const scale = Math.max(a.scale, step.scale);
  const x = rescale(a, scale);
  const s = rescale(step, scale);
  let q = x / s; // BigInt division truncates toward zero
  if (q * s !== x) {
    if (mode === "down" && x < 0n) q -= 1n;
    if (mode === "up" && x > 0n) q += 1n;
  }
  return { units: q * s, scale };
}

/** Round to `places` decimals (half away from zero, or up/down toward +/- infinity). */
export function roundTo(a: Dec, places: number, mode: "half" | "up" | "down" = "half"): Dec {
  if (a.scale <= places) return a;
  const div = 10n ** BigInt(a.scale - places);
  let q = a.units / div;
  const r = a.units % div;
  if (r !== 0n) {
    if (mode === "up" && a.units > 0n) q += 1n;
    else if (mode === "down" && a.units < 0n) q -= 1n;
    else if (mode === "half" && (r < 0n ? -r : r) * 2n >= div) q += a.units < 0n ? -1n : 1n;
  }
  return { units: q, scale: places };
}

/** Canonical text: no exponent, trailing zeros of the fraction removed ("1.50" -> "1.5"). */
export function format(a: Dec, minPlaces = 0): string {
  const negative = a.units < 0n;
  let digits = (negative ? -a.units : a.units).toString();
  if (a.scale > 0) digits = digits.padStart(a.scale + 1, "0");
  let whole = a.scale > 0 ? digits.slice(0, -a.scale) : digits;
  let frac = a.scale > 0 ? digits.slice(-a.scale) : "";
  frac = frac.replace(/0+$/, "");
  if (frac.length < minPlaces) frac = frac.padEnd(minPlaces, "0");
  if (whole === "") whole = "0";
  const body = frac ? `${whole}.${frac}` : whole;
  return negative && (whole !== "0" || /[1-9]/.test(frac)) ? `-${body}` : body;
}

/** Decimal places of a step such as a tick size ("0.01" -> 2, "5" -> 0). */
export function placesOf(step: Dec): number {
  return format(step).split(".")[1]?.length ?? 0;
}
