import { Command, Option } from 'commander';
import type {
  ApiKeyFieldsFragment,
  ApiKeyStatus,
  CreateApiKeyInput,
  KeyEnvironment,
  QuotaInput,
  RateLimitInput,
  ScopePreset,
  UpdateApiKeyInput,
} from '@keyward/client';
import { KeywardClientError } from '@keyward/client';
import { CliContext, ConnectionOptions, connect, notFound, withConnection } from '../context';
import { choice, collect, dateTime, integer, jsonObject, quota, rateLimit } from '../option-parsers';
import { formatDate, formatList, formatQuotas, formatValue, printFields, printJson, printPageFooter, printTable, Writer } from '../output';
import { printUsage, UsageRangeOptions } from './usage';
import { describeDatabase, withDatabase } from '../direct';
import type { CreateApiKey } from '../../api-keys/api-key.service';

export const SECRET_WARNING = 'Store this secret now: it will not be shown again.';

const PRESETS: readonly ScopePreset[] = ['READ', 'WRITE', 'ADMIN', 'INFERENCE'];
const ENVIRONMENTS: readonly KeyEnvironment[] = ['LIVE', 'TEST'];
const STATUSES: readonly ApiKeyStatus[] = ['ACTIVE', 'DISABLED', 'EXPIRED', 'REVOKED'];

/** Options shared by `keys create` and `keys update`; `false` is the `--no-…` form (clear / none). */
interface KeySettingsOptions {
  name?: string;
  scope?: string[];
  ip?: string[] | false;
  rateLimit?: RateLimitInput[] | false;
  quota?: QuotaInput[] | false;
  maxCost?: number | false;
  ownerEmail?: string | false;
  externalId?: string | false;
  meta?: Record<string, unknown> | false;
}

interface CreateOptions extends ConnectionOptions, KeySettingsOptions {
  direct?: boolean;
  org?: string;
  preset?: ScopePreset;
  env?: KeyEnvironment;
  expiresInDays?: number;
  expiresAt?: string;
}

interface UpdateOptions extends ConnectionOptions, KeySettingsOptions {
  expiresAt?: string;
  expiry?: boolean;
}

function addSettingsOptions(command: Command, mode: 'create' | 'update'): Command {
  const update = mode === 'update';
  const replaces = update ? '; replaces the current list' : '';
  const clearing = (flag: string, description: string) => {
    if (update) command.option(flag, description);
  };
  command.option('--scope <scope...>', `scope to grant, e.g. keys:read or inference:* (repeatable, comma-separated allowed${replaces})`, collect);
  command.option('--ip <cidr...>', `allowed client address or CIDR block (repeatable${replaces})`, collect);
  command.option('--no-ip', update ? 'allow every address again' : 'allow every address (the default)');
  command.option('--rate-limit <name:limit:windowSeconds...>', `named rate limit, e.g. per-minute:60:60 (repeatable${replaces}; default per-minute:60:60 and per-hour:1000:3600)`, rateLimit);
  command.option('--no-rate-limit', 'no rate limit at all');
  command.option('--quota <METER:PERIOD:LIMIT...>', `key quota, e.g. TOKENS:MONTH:1000000 (repeatable${replaces})`, quota);
  clearing('--no-quota', 'remove every quota of the key');
  command.option('--max-cost <n>', 'largest cost one verification may ask for (1..1000000)', integer);
  clearing('--no-max-cost', 'remove the per-request cost cap');
  command.option('--owner-email <email>', "owner's email address");
  clearing('--no-owner-email', 'clear the owner email');
  command.option('--external-id <id>', 'your own reference for the key');
  clearing('--no-external-id', 'clear the external id');
  command.option('--meta <json>', 'JSON object returned by verify, e.g. \'{"plan":"pro"}\'', jsonObject);
  clearing('--no-meta', 'clear the metadata');
  return command;
}

/** The settings common to create and update, as API input; a `--no-…` option maps to [] or null. */
function settingsInput(options: KeySettingsOptions): UpdateApiKeyInput {
  const cleared = <T>(value: T | false | undefined, none: T | null) => (value === false ? none : value);
  return {
    scopes: options.scope,
    ipAllowlist: cleared(options.ip, []),
    rateLimits: cleared(options.rateLimit, []),
    quotas: cleared(options.quota, []),
    maxCostPerRequest: cleared(options.maxCost, null),
    ownerEmail: cleared(options.ownerEmail, null),
    externalId: cleared(options.externalId, null),
    meta: cleared(options.meta, null),
  };
}

/** Drops undefined entries so that "not given" stays "unchanged" (null means "clear"). */
function defined<T extends object>(input: T): T {
  return Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined)) as T;
}

/** `keyward keys create|list|show|update|enable|disable|revoke|rotate|delete|usage` */
export function keysCommand(program: Command, context: CliContext): void {
  const keys = program.command('keys').description('API keys');
  for (const subcommand of [createSubcommand, listSubcommand, showSubcommand, updateSubcommand, enableDisableSubcommand, revokeSubcommand, rotateSubcommand, deleteSubcommand, usageSubcommand]) {
    subcommand(keys, context);
  }
}

/** `keys create`: through a server, or `--direct` on the database (the way back from a lost init secret). */
function createSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  addSettingsOptions(
    withConnection(keys.command('create'))
      .description('Create a key; its secret is printed once')
      .requiredOption('--name <name>', 'display name')
      .option('--org <id>', "organization (default: the caller's; another one needs platform:admin)")
      .addOption(new Option('--preset <preset>', 'scope bundle: READ, WRITE, ADMIN or INFERENCE (unioned with --scope; neither gives READ)').argParser(choice(PRESETS)))
      .addOption(new Option('--env <environment>', 'live or test (default live): the secret starts kw_live_ or kw_test_').argParser(choice(ENVIRONMENTS)))
      .option('--expires-in-days <n>', 'expires after this many days', integer)
      .option('--expires-at <date>', 'expires at this date-time (ISO 8601)', dateTime)
      .option('--direct', 'create it in the database of this environment instead of through a server (like init; default organization: the platform\'s) — the way back when the init secret is lost'),
    'create',
  ).addHelpText('after', [
    '',
    'With --direct the key is made on the database that DATABASE_URL / KEYWARD_DATA_DIR / KEYWARD_PEPPER name,',
    'with no key to check (anyone who can open the database can do it); it is audited as api_key.create by no',
    'key. A lost init secret:',
    "  npx keyward keys create --direct --name \"platform admin (recovered)\" --scope '*' --no-rate-limit",
    '  KEYWARD_API_KEY=<new secret> npx keyward keys revoke <lost key id> --reason "secret lost"',
  ].join('\n')).action(async (options: CreateOptions) => {
    const input: CreateApiKeyInput = defined({
      ...settingsInput(options),
      name: options.name!,
      organizationId: options.org,
      preset: options.preset,
      environment: options.env,
      expiresInDays: options.expiresInDays,
      expiresAt: options.expiresAt,
    });
    if (options.direct) {
      const created = await createDirectly(context, input);
      if (options.json) return printJson(io, created);
      io.out(`Created API key ${created.apiKey.id} in organization ${created.apiKey.organizationId} (directly in the database).`);
      io.out('');
      printFields(io, [['Name', created.apiKey.name], ['Environment', created.apiKey.environment], ['Hint', created.apiKey.hint], ['Scopes', formatList(created.apiKey.scopes)]]);
      printSecret(io, created.secret);
      return;
    }
    const created = await connect(context, options).createApiKey(input);
    if (options.json) return printJson(io, created);
    io.out(`Created API key ${created.apiKey.id}.`);
    printKeyAndSecret(io, created.apiKey, created.secret);
  });
}

/** `keys list`: a page of keys with filters. */
function listSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  withConnection(keys.command('list'))
    .description('List keys, newest first (deleted keys are not listed)')
    .option('--org <id>', "organization (default: the caller's)")
    .addOption(new Option('--status <status>', 'ACTIVE, DISABLED, EXPIRED or REVOKED').argParser(choice(STATUSES)))
    .addOption(new Option('--env <environment>', 'live or test').argParser(choice(ENVIRONMENTS)))
    .option('--search <text>', 'case-insensitive match on name, owner email, external id or hint')
    .option('--first <n>', 'page size, 1..500 (default 50)', integer)
    .option('--after <cursor>', 'cursor of the previous page (its "Next page" line)')
    .action(async (options: ConnectionOptions & { org?: string; status?: ApiKeyStatus; env?: KeyEnvironment; search?: string; first?: number; after?: string }) => {
      const filter = defined({ organizationId: options.org, status: options.status, environment: options.env, search: options.search });
      const page = await connect(context, options).apiKeys({ filter, first: options.first, after: options.after });
      if (options.json) return printJson(io, page);
      printTable(
        io,
        ['id', 'name', 'organization', 'env', 'status', 'hint', 'requests', 'last used'],
        page.nodes.map((key) => [key.id, key.name, key.organizationId, key.environment, key.status, key.hint, String(key.requestCount), formatDate(key.lastUsedAt)]),
        'No keys.',
      );
      printPageFooter(io, page);
    });
}

/** `keys show <id>`: one key, never its secret. */
function showSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  withConnection(keys.command('show'))
    .description('Show a key (never its secret)')
    .argument('<id>', 'key id (key_…)')
    .action(async (id: string, options: ConnectionOptions) => {
      const key = await connect(context, options).apiKey(id);
      if (!key) throw notFound('API key', id);
      if (options.json) return printJson(io, key);
      printKey(io, key);
    });
}

/** `keys update <id>`: the options given, nothing else. */
function updateSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  addSettingsOptions(
    withConnection(keys.command('update'))
      .description('Change a key; options not given stay as they are')
      .argument('<id>', 'key id (key_…)')
      .option('--name <name>', 'display name')
      .option('--expires-at <date>', 'expires at this date-time (ISO 8601)', dateTime)
      .option('--no-expiry', 'never expires'),
    'update',
  ).action(async (id: string, options: UpdateOptions, command: Command) => {
    const input: UpdateApiKeyInput = defined({
      ...settingsInput(options),
      name: options.name,
      expiresAt: options.expiry === false ? null : options.expiresAt,
    });
    if (Object.keys(input).length === 0) command.error('error: nothing to update: give at least one option (see --help)');
    const key = await connect(context, options).updateApiKey(id, input);
    if (options.json) return printJson(io, key);
    io.out(`Updated API key ${key.id}.`);
    io.out('');
    printKey(io, key);
  });
}

/** `keys enable <id>` / `keys disable <id>`. */
function enableDisableSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    withConnection(keys.command(name))
      .description(enabled ? 'Enable a disabled key' : 'Disable a key (refused with DISABLED until enabled again)')
      .argument('<id>', 'key id (key_…)')
      .action(async (id: string, options: ConnectionOptions) => {
        const key = await connect(context, options).setApiKeyEnabled(id, enabled);
        if (options.json) return printJson(io, key);
        io.out(`API key ${key.id} (${key.name}) is now ${key.status}.`);
      });
  }
}

/** `keys revoke <id> --reason`. */
function revokeSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  withConnection(keys.command('revoke'))
    .description('Revoke a key for good (it cannot be enabled again)')
    .argument('<id>', 'key id (key_…)')
    .requiredOption('--reason <text>', 'why it is revoked (kept with the key)')
    .action(async (id: string, options: ConnectionOptions & { reason: string }) => {
      const key = await connect(context, options).revokeApiKey(id, options.reason);
      if (options.json) return printJson(io, key);
      io.out(`API key ${key.id} (${key.name}) is now ${key.status}: ${formatValue(key.revokedReason)}`);
    });
}

/** `keys rotate <id> [--grace-seconds]`: the new secret is printed once. */
function rotateSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  withConnection(keys.command('rotate'))
    .description('Replace a key by a new one with the same settings; the new secret is printed once')
    .argument('<id>', 'key id (key_…)')
    .option('--grace-seconds <n>', 'how long the old secret keeps working (default 0: refused at once)', integer)
    .action(async (id: string, options: ConnectionOptions & { graceSeconds?: number }) => {
      const rotated = await connect(context, options).rotateApiKey(id, options.graceSeconds ?? 0);
      if (options.json) return printJson(io, rotated);
      io.out(`Rotated API key ${id}: the new key is ${rotated.apiKey.id}.`);
      io.out(`The old secret works until ${formatDate(rotated.previousKeyExpiresAt)}.`);
      printKeyAndSecret(io, rotated.apiKey, rotated.secret);
    });
}

/** `keys delete <id>`. */
function deleteSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  withConnection(keys.command('delete'))
    .description('Delete a key: it stops working and leaves listings (its usage history stays)')
    .argument('<id>', 'key id (key_…)')
    .action(async (id: string, options: ConnectionOptions) => {
      const deleted = await connect(context, options).deleteApiKey(id);
      if (options.json) return printJson(io, { id, deleted });
      io.out(`Deleted API key ${id}.`);
    });
}

/** `keys usage <id>`: the key's usage over a range. */
function usageSubcommand(keys: Command, context: CliContext): void {
  const { io } = context;
  withConnection(keys.command('usage'))
    .description("A key's usage: totals and breakdowns by operation and day (default: this month)")
    .argument('<id>', 'key id (key_…)')
    .option('--from <date>', 'start (ISO 8601; default: start of this month, UTC)', dateTime)
    .option('--to <date>', 'end (ISO 8601; default: now)', dateTime)
    .action(async (id: string, options: ConnectionOptions & UsageRangeOptions) => {
      const usage = await connect(context, options).usage(defined({ apiKeyId: id, from: options.from, to: options.to }));
      if (options.json) return printJson(io, usage);
      printUsage(io, usage, { byApiKey: false });
    });
}

/** What `keys create --direct` prints: the new key's identity and the secret (shown once). */
interface DirectlyCreated {
  apiKey: { id: string; organizationId: string; name: string; environment: string; hint: string; scopes: string[] };
  secret: string;
}

/**
 * `keys create --direct`: the key service on the database itself, acting as the system (as
 * `init` does); audited as api_key.create by no key. The organization defaults to the platform's.
 */
async function createDirectly(context: CliContext, input: CreateApiKeyInput): Promise<DirectlyCreated> {
  const { SYSTEM_ACTOR } = await import('../../auth/actor');
  const { OrganizationEntity } = await import('../../organizations/organization.entity');
  return withDatabase(context.io, async (app, config) => {
    let organizationId: string | null = input.organizationId == null ? null : String(input.organizationId);
    if (!organizationId) {
      const platform = await app.dataSource.getRepository(OrganizationEntity).findOneBy({ isPlatform: true });
      if (!platform) throw new KeywardClientError('NOT_FOUND', `no platform organization in ${describeDatabase(config)}: run \`keyward init\` first`);
      organizationId = platform.id;
    }
    // The API's input and the service's are the same shape; its enums are string unions there.
    const serviceInput = { ...input, organizationId, expiresAt: input.expiresAt ? new Date(input.expiresAt) : null } as unknown as CreateApiKey;
    const { apiKey, secret } = await app.apiKeys.create(SYSTEM_ACTOR, serviceInput);
    context.io.err(`keyward: created directly in ${describeDatabase(config)}`);
    const { id, name, environment, hint, scopes } = apiKey;
    return { secret, apiKey: { id, organizationId, name, environment, hint, scopes } };
  });
}

/** A key just made (created or rotated): its fields, then its secret, printed this once. */
function printKeyAndSecret(writer: Writer, key: ApiKeyFieldsFragment, secret: string): void {
  writer.out('');
  printKey(writer, key);
  printSecret(writer, secret);
}

export function printSecret(writer: Writer, secret: string): void {
  writer.out('');
  writer.out(`Secret: ${secret}`);
  writer.out(SECRET_WARNING);
}

export function printKey(writer: Writer, key: ApiKeyFieldsFragment): void {
  const revoked = key.revokedAt !== null;
  printFields(writer, [
    ['ID', key.id],
    ['Name', key.name],
    ['Organization', key.organizationId],
    ['Environment', key.environment],
    ['Status', key.status],
    ['Hint', key.hint],
    ['Scopes', formatList(key.scopes)],
    ['IP allowlist', formatList(key.ipAllowlist, 'any address')],
    ['Rate limits', key.rateLimits.length === 0 ? 'none' : key.rateLimits.map((limit) => `${limit.name} ${limit.limit}/${limit.windowSeconds}s`).join(', ')],
    ['Quotas', formatQuotas(key.quotas)],
    ['Max cost', formatValue(key.maxCostPerRequest)],
    ['Owner email', formatValue(key.ownerEmail)],
    ['External id', formatValue(key.externalId)],
    ['Meta', key.meta ? JSON.stringify(key.meta) : '-'],
    ['Expires', key.expiresAt ? formatDate(key.expiresAt) : 'never'],
    ['Revoked', revoked ? `${formatDate(key.revokedAt)} by ${formatValue(key.revokedBy)}: ${formatValue(key.revokedReason)}` : undefined],
    ['Rotated from', key.rotatedFromId ?? undefined],
    ['Requests', String(key.requestCount)],
    ['Last used', formatDate(key.lastUsedAt)],
    ['Created', formatDate(key.createdAt)],
  ]);
}
