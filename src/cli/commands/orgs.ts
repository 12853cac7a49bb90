import { Command } from 'commander';
import type { OrganizationFieldsFragment, QuotaInput } from '@keyward/client';
import { CliContext, ConnectionOptions, connect, notFound, withConnection } from '../context';
import { integer, quota } from '../option-parsers';
import { formatDate, printFields, printJson, printPageFooter, printTable, QUOTA_HEADERS, quotaRows, Writer } from '../output';

/** `keyward orgs create|list|show|suspend|activate` */
export function orgsCommand(program: Command, context: CliContext): void {
  const orgs = program.command('orgs').description('Organizations (create, list, suspend and activate need platform:admin)');
  const { io } = context;

  withConnection(orgs.command('create'))
    .description('Create an organization')
    .requiredOption('--name <name>', 'display name')
    .option('--slug <slug>', 'lower-case letters, digits and dashes (default: derived from the name)')
    .option('--max-keys <n>', 'most active keys it may hold (default 100)', integer)
    .option('--quota <METER:PERIOD:LIMIT...>', 'organization quota, e.g. REQUESTS:MONTH:100000 (repeatable)', quota)
    .action(async (options: ConnectionOptions & { name: string; slug?: string; maxKeys?: number; quota?: QuotaInput[] }) => {
      const organization = await connect(context, options).createOrganization({
        name: options.name,
        slug: options.slug,
        maxKeys: options.maxKeys,
        quotas: options.quota,
      });
      if (options.json) return printJson(io, organization);
      io.out(`Created organization ${organization.id}.`);
      io.out('');
      printOrganization(io, organization);
    });

  withConnection(orgs.command('list'))
    .description('List organizations, newest first')
    .option('--first <n>', 'page size, 1..500 (default 50)', integer)
    .option('--after <cursor>', 'cursor of the previous page (its "Next page" line)')
    .action(async (options: ConnectionOptions & { first?: number; after?: string }) => {
      const page = await connect(context, options).organizations({ first: options.first, after: options.after });
      if (options.json) return printJson(io, page);
      printTable(
        io,
        ['id', 'name', 'slug', 'status', 'max keys', 'sessions', 'created'],
        page.nodes.map((organization) => [
          organization.id,
          organization.name,
          organization.slug,
          organization.status,
          String(organization.maxKeys),
          String(organization.sessionBalance),
          formatDate(organization.createdAt),
        ]),
        'No organizations.',
      );
      printPageFooter(io, page);
    });

  withConnection(orgs.command('show'))
    .description("Show an organization and its quotas (default: the caller's)")
    .argument('[id]', 'organization id (org_…)')
    .action(async (id: string | undefined, options: ConnectionOptions) => {
      const organization = await connect(context, options).organization(id);
      if (!organization) throw notFound('organization', id ?? '');
      if (options.json) return printJson(io, organization);
      printOrganization(io, organization);
    });

  for (const [name, status, verb] of [['suspend', 'SUSPENDED', 'Suspend'], ['activate', 'ACTIVE', 'Activate']] as const) {
    withConnection(orgs.command(name))
      .description(`${verb} an organization${status === 'SUSPENDED' ? ': its keys are refused (ORGANIZATION_SUSPENDED) until it is activated' : ''}`)
      .argument('<id>', 'organization id (org_…)')
      .action(async (id: string, options: ConnectionOptions) => {
        const organization = await connect(context, options).setOrganizationStatus(id, status);
        if (options.json) return printJson(io, organization);
        io.out(`Organization ${organization.id} (${organization.name}) is now ${organization.status}.`);
      });
  }
}

export function printOrganization(writer: Writer, organization: OrganizationFieldsFragment): void {
  printFields(writer, [
    ['ID', organization.id],
    ['Name', organization.name],
    ['Slug', organization.slug],
    ['Status', organization.status],
    ['Max keys', String(organization.maxKeys)],
    ['Session balance', String(organization.sessionBalance)],
    ['Created', formatDate(organization.createdAt)],
  ]);
  writer.out('');
  if (organization.quotas.length === 0) {
    writer.out('Quotas: none');
    return;
  }
  writer.out('Quotas:');
  printTable(writer, QUOTA_HEADERS, quotaRows(organization.quotas), '');
}
