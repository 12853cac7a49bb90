import fs from 'node:fs';
import path from 'node:path';
import { Kind, ObjectTypeDefinitionNode, parse, print } from 'graphql';
import { printKeywardSchema } from '../src/schema';

const SCHEMA_FILE = path.join(__dirname, '..', 'schema.graphql');

/** The line of `sdl` that defines `field` on `type`, e.g. fieldLine(sdl, 'Query', 'apiKeys'). */
function fieldLine(sdl: string, type: string, field: string): string {
  const block = new RegExp(`^type ${type} (?:implements [^{]+)?\\{\\n([\\s\\S]*?)^\\}`, 'm').exec(sdl);
  if (!block) throw new Error(`type ${type} not found in the emitted schema`);
  const line = block[1].split('\n').find((candidate) => new RegExp(`^  ${field}[(:]`).test(candidate));
  if (!line) throw new Error(`field ${type}.${field} not found in the emitted schema`);
  return line;
}

function rootType(sdl: string, type: string): ObjectTypeDefinitionNode {
  const node = parse(sdl).definitions.find((definition): definition is ObjectTypeDefinitionNode => definition.kind === Kind.OBJECT_TYPE_DEFINITION && definition.name.value === type);
  if (!node) throw new Error(`type ${type} not found in the emitted schema`);
  return node;
}

/** The directives applied to one field, printed, e.g. ['@requireScope(anyOf: ["keys:read"])']. */
function directivesOf(sdl: string, type: string, field: string): string[] {
  const node = rootType(sdl, type).fields?.find((candidate) => candidate.name.value === field);
  if (!node) throw new Error(`field ${type}.${field} not found in the emitted schema`);
  return (node.directives ?? []).map((directive) => print(directive));
}

describe('schema.graphql', () => {
  let emitted: string;
  beforeAll(async () => { emitted = await printKeywardSchema(); });

  it('is exactly what the code emits (run `npm run schema` after changing resolvers)', () => {
    const committed = fs.readFileSync(SCHEMA_FILE, 'utf8');
    if (committed !== emitted) {
      const committedLines = committed.split('\n');
      const emittedLines = emitted.split('\n');
      const index = emittedLines.findIndex((line, i) => line !== committedLines[i]);
      const at = index === -1 ? Math.min(committedLines.length, emittedLines.length) : index;
      throw new Error(
        'schema.graphql is out of date with the resolvers. Run `npm run schema` and commit the result.\n' +
        `First difference at line ${at + 1}:\n` +
        `  schema.graphql: ${JSON.stringify(committedLines[at] ?? '<end of file>')}\n` +
        `  code emits:     ${JSON.stringify(emittedLines[at] ?? '<end of file>')}`,
      );
    }
    expect(committed).toBe(emitted);
  });

  it('says it is generated and how to regenerate it', () => {
    expect(emitted.startsWith('# Generated from the resolvers by `npm run schema`; do not edit by hand.\n')).toBe(true);
  });

  it('declares the @requireScope and @public directives', () => {
    expect(emitted).toContain('directive @requireScope(anyOf: [String!]!) on FIELD_DEFINITION');
    expect(emitted).toContain('directive @public on FIELD_DEFINITION');
  });

  it('shows @requireScope(anyOf: ["keys:read"]) on Query.apiKeys', () => {
    expect(fieldLine(emitted, 'Query', 'apiKeys')).toMatch(/^  apiKeys\(.*\): ApiKeyPage! @requireScope\(anyOf: \["keys:read"\]\)$/);
  });

  it('shows @requireScope(anyOf: ["platform:admin"]) on Mutation.createOrganization', () => {
    expect(fieldLine(emitted, 'Mutation', 'createOrganization')).toMatch(/^  createOrganization\(input: CreateOrganizationInput!\): Organization! @requireScope\(anyOf: \["platform:admin"\]\)$/);
  });

  it.each([
    ['Query', 'organization', 'org:read'],
    ['Query', 'organizations', 'platform:admin'],
    ['Query', 'apiKey', 'keys:read'],
    ['Query', 'auditLog', 'audit:read'],
    ['Mutation', 'updateOrganization', 'org:write'],
    ['Mutation', 'setOrganizationStatus', 'platform:admin'],
    ['Mutation', 'createApiKey', 'keys:write'],
    ['Mutation', 'revokeApiKey', 'keys:write'],
    ['Mutation', 'rotateApiKey', 'keys:write'],
    ['Mutation', 'deleteApiKey', 'keys:write'],
  ])('shows the scope %s.%s needs (%s)', (type, field, scope) => {
    expect(directivesOf(emitted, type, field)).toEqual([`@requireScope(anyOf: ["${scope}"])`]);
  });

  it('shows no @requireScope on Query.viewer (any valid key may call it)', () => {
    expect(fieldLine(emitted, 'Query', 'viewer')).toBe('  viewer: Viewer!');
    expect(directivesOf(emitted, 'Query', 'viewer')).toEqual([]);
  });

  it('puts @requireScope or @public on every root field but viewer', () => {
    for (const type of ['Query', 'Mutation']) {
      const fields = rootType(emitted, type).fields ?? [];
      expect(fields.length).toBeGreaterThan(3);
      const bare = fields
        .filter((field) => !field.directives?.some((directive) => ['requireScope', 'public'].includes(directive.name.value)))
        .map((field) => field.name.value);
      expect(bare).toEqual(type === 'Query' ? ['viewer'] : []);
    }
  });
});
