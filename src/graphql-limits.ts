import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import {
  DocumentNode, FragmentDefinitionNode, getNamedType, getNullableType, GraphQLError, GraphQLField, GraphQLNamedType, GraphQLSchema,
  isInterfaceType, isListType, isObjectType, Kind, OperationDefinitionNode, ParseOptions, SchemaMetaFieldDef, SelectionSetNode,
  TypeMetaFieldDef, ValidationContext, ValidationRule, ValueNode,
} from 'graphql';
import { ErrorCode, KeywardError } from './errors';
import { looksLikeSecret } from './auth/key-format';
import { LIMITS } from './validation';
import type { Context } from './context';

/**
 * How large one GraphQL operation over HTTP may be. Anything over a limit is refused before it
 * executes (nothing is verified, counted or written) with 400 QUERY_TOO_COMPLEX; the limits
 * themselves are not echoed in the message.
 */
export const GRAPHQL_LIMITS = {
  /** Nesting of selections (introspection's __schema does not count). */
  depth: 12,
  /** Aliased fields per operation, fragments included: 16 aliased verifyKey calls are refused. */
  aliases: 15,
  /** Lexical tokens of the query text (variables are not part of it). */
  tokens: 1000,
  /** Directives per operation. */
  directives: 50,
  /**
   * Fields one operation may resolve, counted by `operationCost` before it executes: every field
   * selected is 1, and a list multiplies what is selected in it by its size. One page of 500
   * audit entries (9 fields) is about 4,500; a page of 500 keys with every field about 41,000.
   */
  cost: 50_000,
  /** The size a list is counted with when no `first` says (quotas, rate limits, usage buckets…). */
  listSize: 5,
} as const;

/** What one of the limits reports; formatError turns it into QUERY_TOO_COMPLEX. */
export class QueryTooComplexError extends KeywardError {
  constructor(what: string) {
    super(ErrorCode.QUERY_TOO_COMPLEX, `The operation is too complex (${what}); simplify it or split it into several requests`);
  }
}

/** graphql-js's own message when the parser stops at `maxTokens` ("more that", sic). */
const TOKEN_LIMIT_MESSAGE = /^Syntax Error: Document contains more tha[nt] \d+ tokens\. Parsing aborted\.$/;
/** graphql-js's own message when checking that fields merge would take too long (many repeated fields). */
const VALIDATION_BUDGET_MESSAGE = 'Validation aborted.';

/**
 * The limit an error of Apollo's parsing or validation stands for, or null. Validation and
 * syntax errors keep what was reported as `originalError`.
 */
export function queryTooComplex(error: unknown): QueryTooComplexError | null {
  const original = (error as { originalError?: unknown } | null)?.originalError ?? error;
  if (original instanceof QueryTooComplexError) return original;
  if (original instanceof GraphQLError && TOKEN_LIMIT_MESSAGE.test(original.message)) return new QueryTooComplexError('too many tokens');
  if (original instanceof GraphQLError && original.message === VALIDATION_BUDGET_MESSAGE) return new QueryTooComplexError('too many repeated fields');
  return null;
}

const reject = (what: string) => [(context: ValidationContext | null) => context?.reportError(new QueryTooComplexError(what))];

export interface GraphQLLimits {
  plugins: ApolloServerPlugin<Context>[];
  validationRules: ValidationRule[];
  /** Apollo's parser options: the token limit stops parsing early. */
  parseOptions: ParseOptions;
}

/**
 * graphql-armor's depth, alias and directive rules, and its field-suggestion blocking when
 * introspection is off; the cost is `operationCost`, checked by the request rules once the
 * variables are known. The token limit is graphql-js's own `maxTokens` parse option:
 * graphql-armor's Apollo token plugin throws from `parsingDidStart`, which Apollo treats as an
 * unexpected error (500, and no `willSendResponse` for the request).
 */
export function graphqlLimits(options: { introspection: boolean; schemaDetailsNeedKey: boolean }): GraphQLLimits {
  const off = { enabled: false } as const;
  const armor = new ApolloArmor({
    maxTokens: off,
    costLimit: off,
    maxDepth: { n: GRAPHQL_LIMITS.depth, exposeLimits: false, propagateOnRejection: false, onReject: reject('nested too deeply') },
    maxAliases: { n: GRAPHQL_LIMITS.aliases, exposeLimits: false, propagateOnRejection: false, onReject: reject('too many aliases') },
    maxDirectives: { n: GRAPHQL_LIMITS.directives, exposeLimits: false, propagateOnRejection: false, onReject: reject('too many directives') },
    blockFieldSuggestion: { enabled: !options.introspection, mask: '' },
  }).protect();
  return {
    plugins: [...(armor.plugins as ApolloServerPlugin<Context>[]), requestRulesPlugin, ...(options.schemaDetailsNeedKey ? [keylessSuggestionsPlugin] : [])],
    validationRules: armor.validationRules,
    parseOptions: { maxTokens: GRAPHQL_LIMITS.tokens },
  };
}

/**
 * Where schema details need a key (NODE_ENV=production), a caller without a valid one gets no
 * "did you mean" hint in any message (validation and variable errors name schema parts).
 */
const keylessSuggestionsPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    return {
      async willSendResponse({ contextValue, response }) {
        if (contextValue.caller || response.body.kind !== 'single' || !response.body.singleResult.errors) return;
        const { singleResult } = response.body;
        singleResult.errors = singleResult.errors!.map((error) => ({ ...error, message: withoutSuggestions(error.message) }));
      },
    };
  },
};

/** "Did you mean …?" names schema parts; with introspection off, no message may carry one. */
export function withoutSuggestions(message: string): string {
  return message.replace(/\s*Did you mean[^?]*\?/g, '').replace(/\s+\?$/, '').trim();
}

/**
 * graphql-js echoes a variable's value when it does not fit its type
 * (`Variable "$input" got invalid value "kw_live_…" at "input.limit"; Int cannot represent …`);
 * variables carry keys and secrets, so the message keeps the variable, the path and the expected
 * type, never the value.
 */
export function withoutVariableValues(message: string): string {
  const match = /^Variable "(\$[A-Za-z_][A-Za-z0-9_]*)" got invalid value /.exec(message);
  if (!match) return message;
  const rest = message.slice(match[0].length);
  const at = / at "([A-Za-z0-9_.[\]]+)"; /.exec(rest);
  const reason = rest.slice(rest.lastIndexOf('; ') + 2);
  const expected = /^Expected type "([A-Za-z0-9_!\[\]]+)"/.exec(reason)?.[1]
    ?? /^([A-Za-z0-9_]+) cannot represent/.exec(reason)?.[1]
    ?? /does not exist in "([A-Za-z0-9_]+)" enum/.exec(reason)?.[1]
    ?? /^Expected value of type "([A-Za-z0-9_!\[\]]+)"/.exec(reason)?.[1];
  const field = /^Field "([A-Za-z_][A-Za-z0-9_]*)" (of required type "[A-Za-z0-9_!\[\]]+" was not provided|is not defined by type "[A-Za-z0-9_]+")/.exec(reason);
  const why = expected ? `; expected ${expected}` : field ? `; ${field[0]}` : '';
  return `Variable "${match[1]}" got an invalid value${at ? ` at "${at[1]}"` : ''}${why} (the value is not repeated here)`;
}

// Apollo keeps parsed documents: an operation's root fields are worked out once, not per request.
const rootFieldsOf = new WeakMap<OperationDefinitionNode, readonly string[]>();

/** Root fields an operation selects (through fragments), without introspection fields. */
export function rootFields(operation: OperationDefinitionNode, document: DocumentNode): readonly string[] {
  let fields = rootFieldsOf.get(operation);
  if (!fields) rootFieldsOf.set(operation, (fields = Object.freeze(collectRootFields(operation, document))));
  return fields;
}

function collectRootFields(operation: OperationDefinitionNode, document: DocumentNode): string[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const names = new Set<string>();
  const visitSelections = (selectionSet: SelectionSetNode, seen: Set<string>) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        if (!selection.name.value.startsWith('__')) names.add(selection.name.value);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        visitSelections(selection.selectionSet, seen);
      } else {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(fragment.name.value)) visitSelections(fragment.selectionSet, new Set([...seen, fragment.name.value]));
      }
    }
  };
  visitSelections(operation.selectionSet, new Set());
  return [...names];
}

/**
 * What an operation would resolve, counted before it runs (the `cost` limit): every selected field
 * is 1 (`__typename` is free), and a list field multiplies the cost of its selection by its size.
 * The size is the field's `first` argument, from the query text or the request's variables (the
 * argument's default when absent, at most the largest page), or for a page's lists (`nodes`) the
 * `first` of the field that returned the page; any other list counts `GRAPHQL_LIMITS.listSize`.
 * Fragments count wherever they are spread; @skip / @include are not evaluated (counted as kept).
 */
export function operationCost(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Readonly<Record<string, unknown>> = {}): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const variableDefaults = new Map((operation.variableDefinitions ?? []).map((definition) => [definition.variable.name.value, definition.defaultValue]));
  const intOf = (value: ValueNode | undefined): number | null => {
    if (value?.kind === Kind.INT) return Number(value.value);
    if (value?.kind !== Kind.VARIABLE) return null;
    const given = variables[value.name.value];
    return typeof given === 'number' ? given : intOf(variableDefaults.get(value.name.value));
  };
  const pageSize = (field: { arguments?: readonly { name: { value: string }; value: ValueNode }[] }, definition: GraphQLField<unknown, unknown>): number | null => {
    const argument = definition.args.find((candidate) => candidate.name === 'first');
    if (!argument) return null;
    const given = intOf(field.arguments?.find((candidate) => candidate.name.value === 'first')?.value);
    const size = given ?? (typeof argument.defaultValue === 'number' ? argument.defaultValue : LIMITS.pageSize);
    // A page size the resolver refuses is its error to report (BAD_USER_INPUT naming `first`).
    return Math.min(Math.max(size, 0), LIMITS.pageSize);
  };
  const fieldOf = (type: GraphQLNamedType, name: string): GraphQLField<unknown, unknown> | undefined => {
    if (name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
    if (name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
    return isObjectType(type) || isInterfaceType(type) ? type.getFields()[name] : undefined;
  };
  const costOf = (selectionSet: SelectionSetNode, type: GraphQLNamedType, listSize: number | null): number => {
    let cost = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const definition = selection.name.value === '__typename' ? undefined : fieldOf(type, selection.name.value);
        if (!definition) continue;
        const page = pageSize(selection, definition);
        const isList = isListType(getNullableType(definition.type));
        const items = isList ? (page ?? listSize ?? GRAPHQL_LIMITS.listSize) : 1;
        const inner = selection.selectionSet ? costOf(selection.selectionSet, getNamedType(definition.type), isList ? null : page) : 0;
        cost += 1 + items * inner;
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition && schema.getType(selection.typeCondition.name.value);
        cost += costOf(selection.selectionSet, condition ?? type, listSize);
      } else {
        // Validation (NoFragmentCycles, KnownFragmentNames) ran first: every spread resolves, without cycles.
        const fragment = fragments.get(selection.name.value);
        const condition = fragment && schema.getType(fragment.typeCondition.name.value);
        if (fragment && condition) cost += costOf(fragment.selectionSet, condition, listSize);
      }
    }
    return cost;
  };
  const root = schema.getRootType(operation.operation);
  return root ? costOf(operation.selectionSet, root, null) : 0;
}

/**
 * How usage, logs and metrics name an operation: its name, or its root fields joined by "+".
 * The name is the client's free text: one shaped like a secret is never used.
 */
export function operationLabel(operation: OperationDefinitionNode, fields: readonly string[]): string {
  const name = operation.name?.value;
  return name && !looksLikeSecret(name) ? name : (fields.join('+') || operation.operation);
}

/** Root fields that read the schema itself. */
const INTROSPECTION_FIELDS = new Set([SchemaMetaFieldDef.name, TypeMetaFieldDef.name]);

function selectsIntrospection(operation: OperationDefinitionNode, document: DocumentNode): boolean {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const inSelections = (selectionSet: SelectionSetNode, seen: ReadonlySet<string>): boolean => selectionSet.selections.some((selection) => {
    if (selection.kind === Kind.FIELD) return INTROSPECTION_FIELDS.has(selection.name.value);
    if (selection.kind === Kind.INLINE_FRAGMENT) return inSelections(selection.selectionSet, seen);
    const fragment = fragments.get(selection.name.value);
    return Boolean(fragment && !seen.has(fragment.name.value) && inSelections(fragment.selectionSet, new Set([...seen, fragment.name.value])));
  });
  return inSelections(operation.selectionSet, new Set());
}

/**
 * Rules about what one HTTP request may ask, checked once the operation and its variables are
 * known and before anything is consumed: its cost (`operationCost`, over the limit → 400
 * QUERY_TOO_COMPLEX), subscriptions over WebSocket only, one mutation per request (a failed later
 * mutation would null the whole response and hide an earlier one's effect) — aliased verifyKey
 * calls excepted, each of which counts — and, where schema details need a key (NODE_ENV=production),
 * no introspection without one. Also names the operation for the plugins after it: they
 * consume nothing for an operation these rules refused. Everything before the label is
 * synchronous, so the plugins' concurrent didResolveOperation hooks see it decided.
 */
export const requestRulesPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ contextValue, operation, document, schema, request }) {
        if (!operation) return;
        const cost = operationCost(schema, document, operation, request.variables ?? {});
        if (cost > GRAPHQL_LIMITS.cost) {
          throw new QueryTooComplexError('too many fields once list sizes are counted; ask for smaller pages or fewer aliases');
        }
        if (operation.operation === 'subscription') {
          throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'Subscriptions run over WebSocket (graphql-ws, protocol graphql-transport-ws) on this same path, not over HTTP');
        }
        const fields = rootFields(operation, document);
        const writes = operation.operation === 'mutation' ? operation.selectionSet.selections.length : 0;
        if (writes > 1 && !(fields.length === 1 && fields[0] === 'verifyKey')) {
          throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'Send one mutation per request (only verifyKey may be repeated with aliases)');
        }
        // A presented key that did not authenticate is answered with its own refusal (enforcement).
        if (contextValue.app.config.schemaDetailsNeedKey && !contextValue.keyPresented && selectsIntrospection(operation, document)) {
          throw new KeywardError(ErrorCode.UNAUTHENTICATED, 'Introspection (__schema, __type) needs an API key on this server: send Authorization: Bearer <key> (in GraphiQL, in the Headers tab)');
        }
        contextValue.operationCost = cost;
        contextValue.operationLabel = operationLabel(operation, fields);
      },
    };
  },
};
