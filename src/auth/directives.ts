import {
  defaultFieldResolver, DirectiveLocation, GraphQLDirective, GraphQLField, GraphQLFieldConfig, GraphQLList, GraphQLNonNull,
  GraphQLSchema, GraphQLString, OperationDefinitionNode,
} from 'graphql';
import { getDirective, MapperKind, mapSchema } from '@graphql-tools/utils';
import { Directive } from 'type-graphql';
import { holdsAny } from './scopes';
import type { Context } from '../context';
import { ErrorCode, KeywardError } from '../errors';

/**
 * `@requireScope(anyOf: [...])`: the caller's key must hold one of the scopes.
 * `@public`: no key needed. Any other root field needs a valid key and nothing more.
 */
export const requireScopeDirective = new GraphQLDirective({
  name: 'requireScope',
  description: 'Every field needs an authenticated API key holding at least one of these scopes (wildcards allowed: `keys:*`, `*`).',
  locations: [DirectiveLocation.FIELD_DEFINITION],
  args: { anyOf: { type: new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(GraphQLString))) } },
});

export const publicDirective = new GraphQLDirective({
  name: 'public',
  description: 'The field can be called without an API key (it is still rate limited per client IP).',
  locations: [DirectiveLocation.FIELD_DEFINITION],
});

/** Marks a resolver method: the caller needs one of these scopes. */
export const RequireScope = (...anyOf: string[]): MethodDecorator & PropertyDecorator =>
  Directive(`@requireScope(anyOf: ${JSON.stringify(anyOf)})`);

/** Marks a resolver method as callable without an API key. */
export const Public = (): MethodDecorator & PropertyDecorator => Directive('@public');

function authorize(context: Context, field: string, anyOf: string[] | null): void {
  if (!context.caller) {
    throw new KeywardError(ErrorCode.UNAUTHENTICATED, `${field} needs an API key: send "Authorization: Bearer <key>" or "X-API-Key: <key>"`);
  }
  if (anyOf && !holdsAny(context.caller.key.scopes, anyOf, context.caller.organization.isPlatform)) {
    throw new KeywardError(ErrorCode.INSUFFICIENT_SCOPE, `${field} needs one of these scopes: ${anyOf.join(', ')}`, { requiredScopes: anyOf });
  }
}

/** What a root field's directives ask of its caller. */
export interface FieldRule {
  isPublic: boolean;
  /** One of these scopes is needed; null: any valid key. */
  anyOf: readonly string[] | null;
}

// The directives of a field never change: read them once per field, not once per request.
const ruleOf = new WeakMap<GraphQLField<unknown, unknown>, FieldRule>();

/** The rules of the root fields an operation selects. */
export function fieldRules(schema: GraphQLSchema, operation: OperationDefinitionNode, fields: readonly string[]): FieldRule[] {
  const root = schema.getRootType(operation.operation);
  if (!root) return [];
  const rules: FieldRule[] = [];
  for (const name of fields) {
    const field = root.getFields()[name];
    if (!field) continue;
    let rule = ruleOf.get(field);
    if (!rule) {
      const isPublic = Boolean(getDirective(schema, field, publicDirective.name)?.[0]);
      const anyOf = isPublic ? null : ((getDirective(schema, field, requireScopeDirective.name)?.[0]?.anyOf as string[] | undefined) ?? null);
      rule = { isPublic, anyOf };
      ruleOf.set(field, rule);
    }
    rules.push(rule);
  }
  return rules;
}

/** A root field's description ends with who may call it, so GraphiQL's docs pane shows it. */
function withAccess(description: string | null | undefined, access: string): string {
  return description ? `${description}\n\n${access}` : access;
}

/**
 * Enforces the two directives on every root field (queries, mutations, subscriptions), and
 * states them in the field's description.
 */
export function applyAuthDirectives(schema: GraphQLSchema): GraphQLSchema {
  return mapSchema(schema, {
    [MapperKind.ROOT_FIELD]: (fieldConfig: GraphQLFieldConfig<unknown, Context>, fieldName, typeName) => {
      if (getDirective(schema, fieldConfig, publicDirective.name)?.[0]) {
        return { ...fieldConfig, description: withAccess(fieldConfig.description, 'Public: no API key needed (limited per client address).') };
      }
      const rule = getDirective(schema, fieldConfig, requireScopeDirective.name)?.[0];
      const anyOf: string[] | null = rule ? rule.anyOf : null;
      const field = `${typeName}.${fieldName}`;
      const { resolve = defaultFieldResolver, subscribe } = fieldConfig;
      const access = anyOf
        ? `Needs an API key with ${anyOf.length > 1 ? 'one of the scopes' : 'the scope'} ${anyOf.map((scope) => `\`${scope}\``).join(', ')}.`
        : 'Needs any valid API key.';
      return {
        ...fieldConfig,
        description: withAccess(fieldConfig.description, access),
        resolve(source, args, context, info) {
          authorize(context, field, anyOf);
          return resolve(source, args, context, info);
        },
        ...(subscribe && {
          subscribe(source, args, context, info) {
            authorize(context, field, anyOf);
            return subscribe(source, args, context, info);
          },
        }),
      };
    },
  });
}
