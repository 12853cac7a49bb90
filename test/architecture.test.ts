import fs from 'node:fs';
import path from 'node:path';

/**
 * The floors of the house (docs/architecture.md): a module may import its own floor and the ones
 * beneath, never one above, and no import ever comes back round in a circle. A request's path
 * only goes down: transport → app → services → pipeline → domain → stores → … → foundation.
 * First matching floor wins; the catch-all `transport` takes what is not listed lower.
 */
const FLOORS: ReadonlyArray<[name: string, files: readonly string[]]> = [
  ['foundation', ['errors.ts', 'clock.ts', 'ids.ts', 'scalars.ts']],
  ['data', ['*/*.entity.ts', 'db/*.ts', 'migrations/*.ts', 'api-keys/api-key-events.ts', 'quotas/quota-alerts.ts']],
  ['rules', [
    'logger.ts', 'pagination.ts', 'validation.ts', 'auth/scopes.ts', 'auth/ip-allowlist.ts', 'auth/client-address.ts', 'auth/key-format.ts',
    'auth/actor.ts', 'auth/authorization.ts', 'auth/verify-code.ts', 'auth/presented-key.ts', 'quotas/quota-period.ts', 'rate-limits/effective-limits.ts',
    'rate-limits/sliding-log.ts', 'webhooks/webhook-address.ts', 'webhooks/webhook-secret.ts',
    'usage/model-prices.ts', 'usage/token-count.ts',
  ]],
  ['config', ['config.ts', 'auth/pepper.ts']],
  ['stores', [
    'rate-limits/rate-limiter.ts', 'rate-limits/memory-rate-limiter.ts', 'rate-limits/redis-rate-limiter.ts', 'auth/key-cache.ts', 'auth/execution-budget.ts',
    'usage/usage-buffer.ts', 'usage/usage-journal.ts', 'redis.ts', 'outage-log.ts', 'organizations/organization-lock.ts',
    'quotas/quota-counters.ts', 'live/pub-sub.ts', 'live/live-stream.ts', 'live/coalescer.ts', 'live/iterators.ts', 'live/topics.ts', 'live/payloads.ts',
    'webhooks/webhook-subscriptions.ts', 'webhooks/webhook-sender.ts',
  ]],
  ['domain', ['quotas/quota.service.ts', 'sessions/session.service.ts', 'audit-log/audit-log.service.ts']],
  ['pipeline', ['auth/verification-sinks.ts', 'auth/key-verifier.ts']],
  ['services', ['*/*.service.ts', 'live/live-events.ts', 'webhooks/webhook-outbox.ts', 'webhooks/webhook-dispatcher.ts']],
  ['app', ['app.ts', 'organizations/platform-bootstrap.ts']],
  ['transport', ['*']],
  ['entry', ['main.ts', 'cli/*.ts', 'cli/*/*.ts', 'client/*.ts', 'client/*/*.ts']],
];

const SRC = path.resolve(__dirname, '../src');

function matches(file: string, pattern: string): boolean {
  if (pattern === '*') return true;
  const regex = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);
  return regex.test(file);
}

function floorOf(file: string): number {
  const specific = FLOORS.findIndex(([name, patterns]) => name !== 'transport' && patterns.some((pattern) => matches(file, pattern)));
  return specific >= 0 ? specific : FLOORS.findIndex(([name]) => name === 'transport');
}

function sourceFiles(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [path.relative(SRC, full)] : [];
  });
}

/** Every relative import or re-export of a file (type-only ones too), as paths under src/. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(SRC, file), 'utf8');
  const targets: string[] = [];
  for (const match of text.matchAll(/^(?:import|export)\s(?:type\s)?[^;]*?from\s+'(\.[^']+)'/gm)) {
    const resolved = path.normalize(path.join(path.dirname(file), match[1]));
    const candidates = [`${resolved}.ts`, path.join(resolved, 'index.ts')];
    targets.push(candidates.find((candidate) => fs.existsSync(path.join(SRC, candidate))) ?? `${resolved}.ts`);
  }
  return targets;
}

const files = sourceFiles();
const graph = new Map(files.map((file) => [file, importsOf(file)]));

describe('architecture: imports only run down the floors', () => {
  it('imports nothing from a higher floor', () => {
    const upward = [...graph].flatMap(([file, targets]) => targets
      .filter((target) => graph.has(target) && floorOf(target) > floorOf(file))
      .map((target) => `${file} [${FLOORS[floorOf(file)][0]}] → ${target} [${FLOORS[floorOf(target)][0]}]`));
    expect(upward).toEqual([]);
  });

  it('has no import circle', () => {
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const target of graph.get(file) ?? []) {
        if (!graph.has(target)) continue;
        if (state.get(target) === 'open') circles.push([...stack.slice(stack.indexOf(target)), target].join(' → '));
        else if (!state.has(target)) visit(target);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of files) if (!state.has(file)) visit(file);
    expect(circles).toEqual([]);
  });

  it('resolves every relative import to a file', () => {
    const missing = [...graph].flatMap(([file, targets]) => targets.filter((target) => !graph.has(target) && !target.endsWith('.json.ts')).map((target) => `${file} → ${target}`));
    expect(missing).toEqual([]);
  });
});
