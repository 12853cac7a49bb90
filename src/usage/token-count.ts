import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';

/** Tokens of `text` with the o200k_base encoding (GPT-4o family), counted offline. */
export function countTextTokens(text: string): number {
  return countTokens(text);
}

/** The seed's estimate when only a length is known: ceil(characters / 4). */
export function estimateTokens(characters: number): number {
  return Math.ceil(characters / 4);
}
