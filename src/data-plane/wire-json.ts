import {
  coerceInputValue, getNamedType, GraphQLError, GraphQLInputField, GraphQLInputObjectType, GraphQLInputType, GraphQLNamedType, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType,
  GraphQLResolveInfo, GraphQLSchema, isEnumType, isInputObjectType, isListType, isNonNullType, isObjectType, isScalarType,
} from 'graphql';
import { BadUserInputError } from '../errors';

/**
 * The plain-HTTP data plane speaks the GraphQL schema's own types as JSON, so the two cannot
 * drift apart: an input is coerced by graphql-js exactly as a GraphQL variable of that type
 * would be (types, defaults, unknown fields refused), and a result is serialized field by field
 * as execution would (scalars and enums by their own serializers, every field in schema order).
 * Both are compiled once per type.
 */

export type Serializer = (value: unknown) => unknown;

const NO_ARGS = Object.freeze({});

/**
 * Serializes a value of output type `typeName` as the JSON GraphQL would answer with every field
 * selected. A field the source object does not carry is computed by its field resolver, which
 * must answer synchronously from its parent (e.g. Session.tokensRemaining).
 */
export function outputSerializer(schema: GraphQLSchema, typeName: string): Serializer {
  const type = schema.getType(typeName);
  if (!isObjectType(type)) throw new Error(`${typeName} is not an object type of the schema`);
  const compiled = new Map<string, Serializer>();
  return compileObject(type, compiled, schema);
}

function compile(type: GraphQLOutputType, compiled: Map<string, Serializer>, schema: GraphQLSchema): Serializer {
  if (isNonNullType(type)) {
    const inner = compile(type.ofType, compiled, schema);
    return (value) => {
      if (value === null || value === undefined) throw new Error(`a ${String(type)} field has no value`);
      return inner(value);
    };
  }
  let serialize: Serializer;
  if (isListType(type)) {
    const item = compile(type.ofType, compiled, schema);
    serialize = (value) => (value as unknown[]).map(item);
  } else if (isScalarType(type) || isEnumType(type)) {
    serialize = (value) => type.serialize(value);
  } else if (isObjectType(type)) {
    serialize = compileObject(type, compiled, schema);
  } else {
    throw new Error(`${String(type)}: only scalars, enums, lists and object types are served as JSON`);
  }
  return (value) => (value === null || value === undefined ? null : serialize(value));
}

function compileObject(type: GraphQLObjectType, compiled: Map<string, Serializer>, schema: GraphQLSchema): Serializer {
  const known = compiled.get(type.name);
  if (known) return known;
  // Filled in below; a recursive type finds itself here.
  let fields: Array<{ name: string; serialize: Serializer; resolve: (source: object) => unknown }> = [];
  const serialize: Serializer = (value) => {
    const source = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const field of fields) out[field.name] = field.serialize(field.name in source ? source[field.name] : field.resolve(source));
    return out;
  };
  compiled.set(type.name, serialize);
  fields = Object.values(type.getFields()).map((field) => ({
    name: field.name,
    serialize: compile(field.type, compiled, schema),
    resolve: (source: object) => {
      const info = { fieldName: field.name, parentType: type, returnType: field.type, schema } as unknown as GraphQLResolveInfo;
      const value = field.resolve?.(source, NO_ARGS, null, info);
      if (value instanceof Promise) throw new Error(`${type.name}.${field.name} resolves asynchronously: it cannot be served as JSON`);
      return value;
    },
  }));
  return serialize;
}

/**
 * Coerces a JSON body to input type `typeName` as graphql-js coerces a variable of that type;
 * anything wrong is a BadUserInputError naming the field (never repeating the value: it may be
 * a secret).
 */
export function inputCoercer<T>(schema: GraphQLSchema, typeName: string): (body: unknown) => T {
  const named = schema.getType(typeName);
  if (!isInputObjectType(named)) throw new Error(`${typeName} is not an input type of the schema`);
  const type = new GraphQLNonNull(named);
  return (body) => {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadUserInputError('body', `must be a JSON object (${typeName})`);
    let problem: BadUserInputError | null = null;
    const value = coerceInputValue(body, type, (path, _invalid, error) => {
      problem ??= describe(named, path, error);
    });
    if (problem) throw problem;
    return value as T;
  };
}

const NOT_PROVIDED = /^Field "([^"]+)" of required type "([^"]+)" was not provided/;
const NOT_DEFINED = /^Field "([^"]+)" is not defined by type "([^"]+)"/;

function describe(root: GraphQLInputObjectType, path: ReadonlyArray<string | number>, error: GraphQLError): BadUserInputError {
  const at = (more: string[] = []) => [...path, ...more].join('.') || 'body';
  const missing = NOT_PROVIDED.exec(error.message);
  if (missing) return new BadUserInputError(at([missing[1]]), `is required (${missing[2]})`);
  const unknown = NOT_DEFINED.exec(error.message);
  if (unknown) return new BadUserInputError(at([unknown[1]]), `is not a field of ${unknown[2]}`);
  return new BadUserInputError(at(), `must be ${String(typeAt(root, path) ?? 'of another type')}`);
}

/** The declared type at `path` of an input object (list indexes step into the item type). */
function typeAt(root: GraphQLInputObjectType, path: ReadonlyArray<string | number>): GraphQLInputType | null {
  let type: GraphQLInputType = root;
  for (const step of path) {
    const unwrapped: GraphQLInputType = isNonNullType(type) ? type.ofType : type;
    if (typeof step === 'number') {
      if (!isListType(unwrapped)) return null;
      type = unwrapped.ofType;
    } else {
      const named: GraphQLNamedType = getNamedType(unwrapped);
      if (!isInputObjectType(named)) return null;
      const field: GraphQLInputField | undefined = named.getFields()[step];
      if (!field) return null;
      type = field.type;
    }
  }
  return type;
}
