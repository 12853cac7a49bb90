import { ApolloServerPlugin } from '@apollo/server';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import {
  ASTNode, DocumentNode, FragmentDefinitionNode, GraphQLError, Kind, OperationDefinitionNode, ParseOptions, SelectionSetNode,
  ValidationContext, ValidationRule, visit,
} from 'graphql';
import { ErrorCode, KeywardError } from './errors';
import { looksLikeSecret } from './auth/key-format';
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
  /** graphql-armor's cost: objects 2, scalars 1, ×1.5 per level, fragments included; page sizes do not multiply. */
  cost: 5000,
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

/**
 * Counts neither `first` nor `last` as a list size. graphql-armor multiplies a connection's cost
 * by a literal `first: N` but cannot see `$first`, so the same query would pass or fail depending
 * on how it is written; pages are capped at 500 by the resolvers instead.
 */
function withoutPageSizes(rule: ValidationRule): ValidationRule {
  const strip = <T extends ASTNode>(node: T): T => visit(node, {
    [Kind.ARGUMENT]: (argument) => (argument.name.value === 'first' || argument.name.value === 'last' ? null : undefined),
  });
  return (context) => {
    const stripped = new Map<string, ReturnType<ValidationContext['getFragment']>>();
    const view = new Proxy(context, {
      get(target, property) {
        if (property === 'getFragment') {
          return (name: string) => {
            if (!stripped.has(name)) {
              const fragment = target.getFragment(name);
              stripped.set(name, fragment && strip(fragment));
            }
            return stripped.get(name);
          };
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const visitor = rule(view) as { OperationDefinition?: { enter?: (node: ASTNode) => unknown } };
    const enter = visitor.OperationDefinition?.enter;
    if (enter) visitor.OperationDefinition!.enter = (operation) => enter(strip(operation));
    return visitor as ReturnType<ValidationRule>;
  };
}

export interface GraphQLLimits {
  plugins: ApolloServerPlugin<Context>[];
  validationRules: ValidationRule[];
  /** Apollo's parser options: the token limit stops parsing early. */
  parseOptions: ParseOptions;
}

/**
 * graphql-armor's depth, alias, directive and cost rules, and its field-suggestion blocking
 * when introspection is off. The token limit is graphql-js's own `maxTokens` parse option:
 * graphql-armor's Apollo token plugin throws from `parsingDidStart`, which Apollo treats as an
 * unexpected error (500, and no `willSendResponse` for the request).
 */
export function graphqlLimits(options: { introspection: boolean }): GraphQLLimits {
  const off = { enabled: false } as const;
  const armor = new ApolloArmor({
    maxTokens: off,
    costLimit: off,
    maxDepth: { n: GRAPHQL_LIMITS.depth, exposeLimits: false, propagateOnRejection: false, onReject: reject('nested too deeply') },
    maxAliases: { n: GRAPHQL_LIMITS.aliases, exposeLimits: false, propagateOnRejection: false, onReject: reject('too many aliases') },
    maxDirectives: { n: GRAPHQL_LIMITS.directives, exposeLimits: false, propagateOnRejection: false, onReject: reject('too many directives') },
    blockFieldSuggestion: { enabled: !options.introspection, mask: '' },
  }).protect();
  const cost = new ApolloArmor({
    maxTokens: off, maxDepth: off, maxAliases: off, maxDirectives: off, blockFieldSuggestion: off,
    costLimit: { maxCost: GRAPHQL_LIMITS.cost, exposeLimits: false, propagateOnRejection: false, onReject: reject('too costly') },
  }).protect();
  return {
    plugins: [...(armor.plugins as ApolloServerPlugin<Context>[]), requestRulesPlugin],
    validationRules: [...armor.validationRules, ...cost.validationRules.map(withoutPageSizes)],
    parseOptions: { maxTokens: GRAPHQL_LIMITS.tokens },
  };
}

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
 * How usage, logs and metrics name an operation: its name, or its root fields joined by "+".
 * The name is the client's free text: one shaped like a secret is never used.
 */
export function operationLabel(operation: OperationDefinitionNode, fields: readonly string[]): string {
  const name = operation.name?.value;
  return name && !looksLikeSecret(name) ? name : (fields.join('+') || operation.operation);
}

/**
 * Rules about what one HTTP request may ask, checked once the operation is known and before
 * anything is consumed: subscriptions run over WebSocket only, and a request carries one
 * mutation (a failed later mutation would null the whole response and hide an earlier one's
 * effect) — aliased verifyKey calls excepted, each of which counts. Also names the operation
 * for the plugins after it.
 */
export const requestRulesPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ contextValue, operation, document }) {
        if (!operation) return;
        if (operation.operation === 'subscription') {
          throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'Subscriptions run over WebSocket (graphql-ws, protocol graphql-transport-ws) on this same path, not over HTTP');
        }
        const fields = rootFields(operation, document);
        const writes = operation.operation === 'mutation' ? operation.selectionSet.selections.length : 0;
        if (writes > 1 && !(fields.length === 1 && fields[0] === 'verifyKey')) {
          throw new KeywardError(ErrorCode.BAD_USER_INPUT, 'Send one mutation per request (only verifyKey may be repeated with aliases)');
        }
        contextValue.operationLabel = operationLabel(operation, fields);
      },
    };
  },
};
