import { Command } from 'commander';
import type { UsageBucketFieldsFragment, UsageQuery } from '@keyward/client';
import { CliContext, ConnectionOptions, connect, withConnection } from '../context';
import { dateTime } from '../option-parsers';
import { formatDate, formatNumber, printFields, printTable, printJson, Writer } from '../output';

export interface UsageRangeOptions {
  from?: string;
  to?: string;
}

/** `keyward usage [--org] [--key] [--from] [--to]` */
export function usageCommand(program: Command, context: CliContext): void {
  const { io } = context;
  withConnection(program.command('usage'))
    .description("Usage totals and breakdowns by operation, key and day (default: the caller's organization, this month)")
    .option('--org <id>', "organization (default: the caller's; another one needs platform:admin)")
    .option('--key <id>', 'only this key (key_…)')
    .option('--from <date>', 'start (ISO 8601; default: start of this month, UTC)', dateTime)
    .option('--to <date>', 'end (ISO 8601; default: now)', dateTime)
    .action(async (options: ConnectionOptions & UsageRangeOptions & { org?: string; key?: string }) => {
      const range = Object.fromEntries(
        Object.entries({ organizationId: options.org, apiKeyId: options.key, from: options.from, to: options.to }).filter(([, value]) => value !== undefined),
      );
      const usage = await connect(context, options).usage(range);
      if (options.json) return printJson(io, usage);
      printUsage(io, usage, { byApiKey: options.key === undefined });
    });
}

const BUCKET_HEADERS = ['requests', 'errors', 'tokens', 'cost usd', 'avg latency ms'];

function bucketRows(buckets: readonly UsageBucketFieldsFragment[]): string[][] {
  return buckets.map((bucket) => [
    bucket.key,
    String(bucket.requests),
    String(bucket.errors),
    String(bucket.tokens),
    formatNumber(bucket.costUsd, 4),
    formatNumber(bucket.avgLatencyMs === null ? null : Math.round(bucket.avgLatencyMs * 10) / 10),
  ]);
}

export function printUsage(writer: Writer, usage: UsageQuery['usage'], show: { byApiKey: boolean }): void {
  printFields(writer, [
    ['From', formatDate(usage.from)],
    ['To', formatDate(usage.to)],
    ['Requests', String(usage.requests)],
    ['Errors', String(usage.errors)],
    ['Tokens', String(usage.tokens)],
    ['Cost (USD)', formatNumber(usage.costUsd, 4)],
    ['Avg latency (ms)', formatNumber(usage.avgLatencyMs === null ? null : Math.round(usage.avgLatencyMs * 10) / 10)],
  ]);
  const sections: Array<[string, string, readonly UsageBucketFieldsFragment[]]> = [
    ['By operation', 'operation', usage.byOperation],
    ...(show.byApiKey ? [['By key', 'key', usage.byApiKey] as [string, string, readonly UsageBucketFieldsFragment[]]] : []),
    ['By day', 'day', usage.byDay],
  ];
  for (const [title, column, buckets] of sections) {
    writer.out('');
    writer.out(`${title}:`);
    printTable(writer, [column, ...BUCKET_HEADERS], bucketRows(buckets), '(none)');
  }
}
