import {
  getNamedType, GraphQLField, GraphQLInputField, GraphQLInputType, GraphQLNamedType, GraphQLOutputType, GraphQLSchema, isEnumType, isInputObjectType,
  isListType, isNonNullType, isObjectType, isScalarType,
} from 'graphql';
import { ErrorCode, HTTP_STATUS } from '../errors';

/** What the data plane serves: each route's input and result types in the GraphQL schema. */
export interface DataPlaneOperation {
  path: string;
  /** The GraphQL mutation it answers like. */
  mutation: string;
  scope: string;
  summary: string;
  input: string;
  result: string;
}

type JsonSchema = Record<string, unknown>;

/** JSON Schema of the contract's scalars (others are strings). */
const SCALARS: Record<string, JsonSchema> = {
  String: { type: 'string' },
  ID: { type: 'string' },
  Boolean: { type: 'boolean' },
  Int: { type: 'integer', minimum: -2147483648, maximum: 2147483647 },
  Float: { type: 'number' },
  SafeInt: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 },
  DateTime: { type: 'string', format: 'date-time' },
  JSONObject: { type: 'object' },
};

/**
 * The OpenAPI 3.1 document of the plain-HTTP data plane, generated from the GraphQL schema's
 * own input and result types (the same ones the routes coerce and serialize with), so the
 * document, the routes and GraphQL describe one contract.
 */
export function openApiDocument(schema: GraphQLSchema, operations: readonly DataPlaneOperation[], version: string): JsonSchema {
  const components: Record<string, JsonSchema> = {};
  const refTo = (type: GraphQLNamedType): JsonSchema => {
    if (isScalarType(type)) return SCALARS[type.name] ?? { type: 'string' };
    if (!components[type.name]) {
      components[type.name] = {};
      components[type.name] = definitionOf(type);
    }
    return { $ref: `#/components/schemas/${type.name}` };
  };
  const schemaOf = (type: GraphQLInputType | GraphQLOutputType): JsonSchema => {
    const nullable = !isNonNullType(type);
    const inner = isNonNullType(type) ? type.ofType : type;
    const described = isListType(inner) ? { type: 'array', items: schemaOf(inner.ofType) } : refTo(getNamedType(inner));
    return nullable ? { oneOf: [described, { type: 'null' }] } : described;
  };
  const fieldSchema = (field: GraphQLField<unknown, unknown> | GraphQLInputField): JsonSchema => {
    const described = schemaOf(field.type);
    const extra: JsonSchema = {};
    if (field.description) extra.description = field.description;
    if ('defaultValue' in field && field.defaultValue !== undefined) extra.default = field.defaultValue;
    return Object.keys(extra).length ? { ...described, ...extra } : described;
  };
  const definitionOf = (type: GraphQLNamedType): JsonSchema => {
    if (isEnumType(type)) {
      return { type: 'string', enum: type.getValues().map((value) => value.name), ...(type.description && { description: type.description }) };
    }
    if (isObjectType(type) || isInputObjectType(type)) {
      const fields = Object.values(type.getFields()) as Array<GraphQLField<unknown, unknown> | GraphQLInputField>;
      const required = fields.filter((field) => isNonNullType(field.type) && !('defaultValue' in field && field.defaultValue !== undefined)).map((field) => field.name);
      return {
        type: 'object',
        ...(type.description && { description: type.description }),
        properties: Object.fromEntries(fields.map((field) => [field.name, fieldSchema(field)])),
        ...(required.length && { required }),
        additionalProperties: false,
      };
    }
    throw new Error(`${type.name} cannot be described in the data plane`);
  };

  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
  const paths: Record<string, JsonSchema> = {};
  for (const operation of operations) {
    const mutation = schema.getMutationType()?.getFields()[operation.mutation];
    paths[operation.path] = {
      post: {
        operationId: operation.mutation,
        summary: operation.summary,
        description: `${mutation?.description?.split('\n\n')[0] ?? ''}\n\nThe same as the GraphQL mutation \`${operation.mutation}\` (same pipeline, usage, audit and metrics). Needs a key with \`${operation.scope}\`; like every key-authenticated call it takes one unit of the caller key's own rate limits and quotas.`.trim(),
        security: [{ bearer: [] }, { apiKey: [] }],
        requestBody: { required: true, content: { 'application/json': { schema: refTo(schema.getType(operation.input)!) } } },
        responses: {
          200: {
            description: 'The result, as GraphQL answers it with every field selected.',
            headers: {
              'X-RateLimit-Limit': { schema: { type: 'integer' }, description: "The caller key's tightest window." },
              'X-RateLimit-Remaining': { schema: { type: 'integer' } },
              'X-RateLimit-Reset': { schema: { type: 'integer' }, description: 'Unix epoch seconds.' },
            },
            content: { 'application/json': { schema: refTo(schema.getType(operation.result)!) } },
          },
          400: errorResponse('BAD_USER_INPUT: the body is not JSON, or not the input type (the message names the field).'),
          401: errorResponse("UNAUTHENTICATED (no key), or the caller key's refusal (INVALID_API_KEY, KEY_REVOKED, KEY_DISABLED, KEY_EXPIRED)."),
          403: errorResponse('INSUFFICIENT_SCOPE, ORGANIZATION_SUSPENDED or FORBIDDEN_IP of the caller key; NOT_FOUND is 404.'),
          413: errorResponse('PAYLOAD_TOO_LARGE: the body is over 1 MiB.'),
          429: { ...errorResponse("RATE_LIMITED or QUOTA_EXCEEDED of the caller key, or too many failed authentications from this address."), headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'Whole seconds.' } } },
          503: errorResponse('UNAVAILABLE: a backing store is down; retry shortly.'),
        },
      },
    };
  }
  components.Error = {
    type: 'object',
    properties: {
      error: {
        type: 'object',
        properties: {
          code: { type: 'string', enum: Object.values(ErrorCode), description: `The HTTP status follows the code: ${Object.entries(HTTP_STATUS).map(([code, status]) => `${code} ${status}`).join(', ')}.` },
          message: { type: 'string' },
        },
        required: ['code', 'message'],
      },
    },
    required: ['error'],
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'keyward data plane',
      version,
      description: 'Verify keys and record usage over plain HTTP, from any language: the same pipeline as the GraphQL API at /graphql.',
    },
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <key>' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    },
  };
}
