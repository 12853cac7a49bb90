import { BadUserInputError } from '../errors';

/** USD per 1,000,000 tokens of one model (MODEL_PRICES). */
export interface ModelPrice {
  inputPerMillion: number;
  outputPerMillion: number;
}

export type ModelPrices = ReadonlyMap<string, ModelPrice>;

/** What was used, as a provider reports it: the split when known, else a total. */
export interface TokenUse {
  inputTokens?: number | null;
  outputTokens?: number | null;
  tokens?: number | null;
}

/**
 * `{"model": {"input": 2.5, "output": 10}, …}` (USD per 1M tokens) → prices. Throws a message
 * naming the bad entry; the caller names the variable.
 */
export function parseModelPrices(json: string): ModelPrices {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new Error(`is not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('must be a JSON object of model → {"input": USD, "output": USD} per 1M tokens');
  const prices = new Map<string, ModelPrice>();
  for (const [model, price] of Object.entries(parsed)) {
    const { input, output } = (price ?? {}) as { input?: unknown; output?: unknown };
    if (!isPrice(input) || !isPrice(output)) throw new Error(`"${model}" needs "input" and "output": non-negative USD per 1M tokens`);
    prices.set(model, { inputPerMillion: input, outputPerMillion: output });
  }
  return prices;
}

function isPrice(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * USD of `use` on `model`: input and output tokens at their own prices; a total without the
 * split at the higher of the two (an estimate is better too high than too low). `field` names
 * the input field when the model has no price.
 */
export function priceOf(prices: ModelPrices, model: string, use: TokenUse, field = 'model'): number {
  const price = prices.get(model);
  if (!price) throw new BadUserInputError(field, `"${model.slice(0, 100)}" has no price in MODEL_PRICES; give costUsd`);
  const usd = use.inputTokens != null || use.outputTokens != null
    ? (use.inputTokens ?? 0) * price.inputPerMillion + (use.outputTokens ?? 0) * price.outputPerMillion
    : (use.tokens ?? 0) * Math.max(price.inputPerMillion, price.outputPerMillion);
  // Whole nano-dollars: sums of many small costs stay exact enough and print cleanly.
  return Math.round(usd / 1e6 * 1e9) / 1e9;
}
